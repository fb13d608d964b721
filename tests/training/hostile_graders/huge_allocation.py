# expect: MemoryError
# Ten gigabytes at once.
def grade(completion, **row):
    return float(len(bytearray(10 * 1024**3)) > 0)
