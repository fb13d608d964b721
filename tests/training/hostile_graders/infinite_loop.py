# expect: time limit of
# Never answer: stopped at the CPU limit, or the wall-clock one on a loaded machine.
def grade(completion, **row):
    while True:
        pass
