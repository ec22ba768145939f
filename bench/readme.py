#!/usr/bin/python3
"""readme.py - `make readme-bench`: the README's performance tables, copied
from bench/results.md, so that they are never written by hand.

Usage: readme.py RESULTS README

Copies what RESULTS holds between <!-- readme:begin --> and
<!-- readme:end --> into README between <!-- bench:begin --> and
<!-- bench:end -->, after a line that names the commit and date of the run.
"""
import re
import sys


def between(text, begin, end, what):
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        sys.exit("readme.py: %s has no %s ... %s" % (what, begin, end))
    return i + len(begin), j


def main():
    results_path, readme_path = sys.argv[1:3]
    results = open(results_path, encoding="utf-8").read()
    i, j = between(results, "<!-- readme:begin -->", "<!-- readme:end -->", results_path)
    commit = re.search(r"^\| commit \| (.*) \|$", results, re.M)
    date = re.search(r"^\| date \| (.*) \|$", results, re.M)
    body = ("\n_From `%s` (`make bench`, commit %s, %s); `make readme-bench` copies it here._\n"
            % (results_path, commit.group(1) if commit else "unknown",
               date.group(1) if date else "undated")) + results[i:j].rstrip() + "\n"
    readme = open(readme_path, encoding="utf-8").read()
    a, b = between(readme, "<!-- bench:begin -->", "<!-- bench:end -->", readme_path)
    new = readme[:a] + body + readme[b:]
    if new != readme:
        with open(readme_path, "w", encoding="utf-8") as f:
            f.write(new)
    print("readme.py: %s %s" % (readme_path, "updated" if new != readme else "unchanged"))


if __name__ == "__main__":
    main()
