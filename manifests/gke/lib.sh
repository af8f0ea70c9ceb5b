#!/usr/bin/env bash
# Shared by the gke/*.sh scripts (sourced): flags, --dry-run handling, required settings, IAM grants.
# bash 3.2 (macOS) runs these too: no ${var@Q}, ${var,,}, mapfile or empty "${array[@]}".

plain_word='^[A-Za-z0-9_./:=,@+%-]+$'
show() {  # print a command line, quoting only the words that need it
    local out="" word
    for word in "$@"; do
        if ! [[ "$word" =~ $plain_word ]]; then
            word="'$(printf '%s' "$word" | sed "s/'/'\\\\''/g")'"
        fi
        out="$out $word"
    done
    echo "${out# }"
}

log() { echo "$(basename "$0" .sh): $*" >&2; }
die() { log "$*"; exit 1; }

# Arguments: --dry-run, and the flags the script lists in FLAGS before sourcing this file.
given_flags=" "
for arg in "$@"; do
    case " --dry-run ${FLAGS:-} " in
    *" $arg "*) given_flags="$given_flags$arg " ;;
    *) log "unknown argument '$arg' (flags: --dry-run${FLAGS:+ $FLAGS})"; exit 2 ;;
    esac
done
flag() { [[ "$given_flags" == *" $1 "* ]]; }
dry_run=false
if flag --dry-run; then dry_run=true; fi

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

sa_email() { echo "$1@$PROJECT_ID.iam.gserviceaccount.com"; }

ensure_service_account() {  # ensure_service_account NAME DISPLAY-NAME: a Google service account in PROJECT_ID
    if $dry_run || ! gcloud iam service-accounts describe "$(sa_email "$1")" --project "$PROJECT_ID" >/dev/null 2>&1; then
        run gcloud iam service-accounts create "$1" --project "$PROJECT_ID" --display-name "$2"
    fi
}

grant_project_role() {  # grant_project_role MEMBER ROLE
    run gcloud projects add-iam-policy-binding "$PROJECT_ID" --member "$1" --role "$2" --condition None
}

grant_bucket_role() {  # grant_bucket_role BUCKET MEMBER ROLE (BUCKET with or without gs://)
    run gcloud storage buckets add-iam-policy-binding "gs://${1#gs://}" --member "$2" --role "$3"
}

# grant_image_pulls MEMBER: roles/artifactregistry.reader on the Artifact Registry repository of
# IMAGE_REGISTRY (LOCATION-docker.pkg.dev/PROJECT/REPOSITORY, as containers/containers.mk names it),
# or on PROJECT_ID when IMAGE_REGISTRY is not such a repository.
grant_image_pulls() {
    local member="$1" host path
    case "${IMAGE_REGISTRY:-}" in
    *-docker.pkg.dev/*/*)
        host="${IMAGE_REGISTRY%%/*}" path="${IMAGE_REGISTRY#*/}"
        run gcloud artifacts repositories add-iam-policy-binding "$(echo "$path" | cut -d/ -f2)" \
            --project "${path%%/*}" --location "${host%-docker.pkg.dev}" \
            --member "$member" --role roles/artifactregistry.reader
        ;;
    *) grant_project_role "$member" roles/artifactregistry.reader ;;
    esac
}
