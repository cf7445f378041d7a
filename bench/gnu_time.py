"""What `/usr/bin/time -v` reported for a command, read from the file its stderr went to."""
import re


def timed(path):
    """(wall seconds, peak RSS in MB) from a `/usr/bin/time -v` report."""
    text = open(path).read()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    seconds = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(":"))))
    return seconds, int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
