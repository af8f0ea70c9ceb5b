"""What the project's shell scripts may use: bash 3.2, the bash macOS ships, which stops on bash 4 syntax.

No bash 3.2 can be installed here, so two checks stand in for it: `bash4_constructs` finds the bash 4+
features in a script's text, and `BASH3_ENV` runs a script under this machine's bash with the bash 4
builtins switched off (BASH_ENV is read by every non-interactive bash before its script), so every test
that runs a script also shows it never reaches for them.
"""

from __future__ import annotations

import re
from pathlib import Path

BASH4_ONLY = {
    "case modification (${var,,} ${var^^})": r"\$\{[#!]?\w+(\[[^]]*\])?(,,?|\^\^?)[^}]*\}",
    "transformation (${var@Q})": r"\$\{\w+(\[[^]]*\])?@[QEPAaKkUuL]\}",
    "mapfile / readarray": r"\b(mapfile|readarray)\b",
    "coproc": r"\bcoproc\b",
    "associative array, nameref or global declare": r"\b(declare|local|typeset)\s+-\w*[Ang]",
    "[[ -v ]]": r"\[\[\s+-v\s",
    "negative array index": r"\$\{\w+\[-\d+\]\}",
    "case fall-through (;& ;;&)": r";;&|;&",
    "|& or &>> redirection": r"\|&|&>>",
    "wait -n": r"\bwait\s+-n\b",
    "bash 4 shell option": r"\bshopt\s+-s\s+(globstar|lastpipe|inherit_errexit|direxpand|globasciiranges)",
    "bash 4+ variable": r"\$\{?(EPOCHSECONDS|EPOCHREALTIME|BASHPID|SRANDOM)\b",
    "automatic file descriptor ({fd}>)": r"\{\w+\}[<>]",
    "printf time format (%(...)T)": r"%\([^)]*\)T",
    "brace range with a step ({1..9..2})": r"\{-?\d+\.\.-?\d+\.\.-?\d+\}",
    # Not bash 4, but read differently by bash 3.1, 3.2 and 4: a regex after =~ belongs in a variable.
    "literal regex after =~": r"=~\s*[^\s$]",
}
BASH3_ENV_FILE = Path(__file__).with_name("bash3-env.sh")
BASH3_ENV = {"BASH_ENV": str(BASH3_ENV_FILE)}


def code(text: str) -> str:
    """The script without its comments (whole-line and trailing ones)."""
    return "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in text.splitlines())


def bash4_constructs(text: str) -> list[str]:
    """What in this script bash 3.2 cannot run, one 'line N: what' entry each."""
    found = []
    body = code(text)
    lines = body.splitlines()
    for what, pattern in BASH4_ONLY.items():
        for n, line in enumerate(lines, 1):
            if re.search(pattern, line):
                found.append(f"line {n}: {what}")
    # bash < 4.4 calls an empty array unbound under `set -u`: arrays that start empty are expanded
    # guarded, as ${name[@]+"${name[@]}"}.
    for name in set(re.findall(r"(?:^|\s|local\s+)(\w+)=\(\)", body, re.M)):
        for n, line in enumerate(lines, 1):
            if re.search(rf'(?<!\+)"\$\{{{name}\[@\]\}}"', line):
                found.append(f'line {n}: {name} may be empty: expand it as ${{{name}[@]+"${{{name}[@]}}"}}')
    return sorted(found)
