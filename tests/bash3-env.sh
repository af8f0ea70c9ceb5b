# BASH_ENV of the test runs (tests/shell.py): bash 4 builtins are not there in bash 3.2.
enable -n mapfile readarray
