# expect: FileNotFoundError
# Read the data folder (datasets, adapters, the database) by the path the worker uses.
import os


def grade(completion, data_dir, **row):
    return float(len(os.listdir(data_dir)) > 0)
