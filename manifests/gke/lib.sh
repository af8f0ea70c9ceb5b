#!/usr/bin/env bash
# Shared by the gke/*.sh scripts (sourced): --dry-run handling and required settings.

show() {  # print a command line, quoting only the words that need it
    local out=() word
    for word in "$@"; do
        if [[ "$word" =~ ^[A-Za-z0-9_./:=,@+%-]+$ ]]; then out+=("$word"); else out+=("${word@Q}"); fi
    done
    echo "${out[*]}"
}

dry_run=false
if [[ "${1:-}" == --dry-run ]]; then dry_run=true; fi

run() {  # run a command, or print it under --dry-run
    if $dry_run; then show "$@"; else "$@"; fi
}

require() {  # require SCRIPT HINT VAR...: each VAR set and not left as its own placeholder name
    local script="$1" hint="$2" var value
    shift 2
    for var in "$@"; do
        value="${!var:-}"
        if [[ -z "$value" || "$value" == "$var" ]]; then
            echo "$script: set $var ($hint)" >&2
            exit 2
        fi
    done
}
