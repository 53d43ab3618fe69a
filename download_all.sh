#!/usr/bin/env bash
# Downloads the published BigBiGAN generator, its background direction, the latent embeddings of the
# training datasets and, on request, the released U-Nets into the folders the scripts look in.
# Every file is checked (python3 -m verify_download) before it is kept: a download that fails its
# check, or is interrupted, is deleted, so no partial file is ever left. Safe to rerun: a file already
# present is checked instead of downloaded again. Run with --help for the options.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bash download_all.sh [--unets] [--only NAME]...

  (no option)   BigBiGAN_x1.pth and bg_direction.pth -> BigGAN/weights/, the four embeddings -> embeddings/
  --unets       also the released U-Nets -> pretrained/ (the same as setting UNETS=1)
  --only NAME   only this group (gan, embeddings, unets) or file (e.g. bg_direction.pth); repeatable

environment:
  BGW_MIRROR      fetch <id>/<file> from this URL prefix instead of https://www.dropbox.com/s
  BGW_ROOT        folder the files go under (default: this repository)
  BGW_DOWNLOADER  wget or curl (default: wget when installed, else curl)
  PYTHON          the Python with torch that checks the files (default: python3)
EOF
}

# group, Dropbox id, destination (its file name is the one on the server), kind of check.
FILES=(
    "gan 9w2i45h455k3b4p BigGAN/weights/BigBiGAN_x1.pth generator"
    "gan np74kmkohkbx76t BigGAN/weights/bg_direction.pth direction"
    "embeddings y5qr9wwtop7ot6b embeddings/BigBiGAN_ImageNet_z.npy embeddings"
    "embeddings b77in0vuc8jy1yf embeddings/BigBiGAN_DUTS-TR_z.npy embeddings"
    "embeddings qgacaoo7urh35j9 embeddings/BigBiGAN_CUB_train_z.npy embeddings"
    "embeddings fmw2g54xqli59ck embeddings/BigBiGAN_Flowers_train_z.npy embeddings"
    "unets 3nty6x7fwof7xyv pretrained/u_net_imagenet.pth unet"
    "unets 90odh34ddpjvuxk pretrained/u_net_cub2002011.pth unet"
    "unets fk8r9q0tvwaxbpl pretrained/u_net_flowers.pth unet"
)

fail() {  # fail STATUS MESSAGE...
    local status=$1
    shift
    echo "error: $*" >&2
    exit "$status"
}

known_name() {  # known_name NAME: whether NAME is a group or a file name of FILES
    local entry group id dest kind
    for entry in "${FILES[@]}"; do
        read -r group id dest kind <<<"$entry"
        if [ "$1" = "$group" ] || [ "$1" = "${dest##*/}" ]; then return 0; fi
    done
    return 1
}

selected() {  # selected GROUP NAME: whether the command line asks for this file
    local want
    if [ "$1" = unets ] && [ "$unets" = 1 ]; then return 0; fi
    if [ ${#only[@]} -eq 0 ]; then [ "$1" != unets ]; return; fi
    for want in "${only[@]}"; do
        if [ "$want" = "$1" ] || [ "$want" = "$2" ]; then return 0; fi
    done
    return 1
}

download() {  # download URL FILE
    if [ "$downloader" = wget ]; then
        wget --no-verbose --show-progress --tries=1 --timeout=60 -O "$2" "$1"
    else
        curl --location --fail --show-error --progress-bar --connect-timeout 60 \
            --speed-limit 1 --speed-time 60 -o "$2" "$1"
    fi
}

verify() {  # verify KIND FILE: prints what FILE holds, or says on stderr why it is unusable
    PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$python" -m verify_download "$1" "$2"
}

fetch() {  # fetch KIND ID DEST: DEST is kept only once it has passed its check
    local kind=$1 dest=$3 report
    local url="$mirror/$2/${dest##*/}?dl=1" part="$tmp_dir/${dest##*/}"
    if [ -e "$dest" ]; then
        if report=$(verify "$kind" "$dest"); then echo "have $dest ($report)"; return 0; fi
        echo "error: $dest is present but unusable (see above); it was left as it is: delete it and rerun" \
            "to download it again" >&2
        return 1
    fi
    echo "downloading $dest from $url"
    if ! download "$url" "$part"; then
        rm -f "$part"
        echo "error: could not download $dest from $url ($downloader's message is above): check the" \
            "connection and the address, or set BGW_MIRROR to a reachable copy" >&2
        return 1
    fi
    if ! report=$(verify "$kind" "$part"); then
        rm -f "$part"
        echo "error: the download of $dest from $url is unusable (see above) and was deleted" >&2
        return 1
    fi
    mkdir -p "$(dirname "$dest")" && mv "$part" "$dest" && echo "kept $dest ($report)"
}

unets=0
[ "${UNETS:-0}" = 0 ] || unets=1
only=()
while [ $# -gt 0 ]; do
    case $1 in
        --unets) unets=1 ;;
        --only)
            [ $# -ge 2 ] || fail 2 "--only needs a group (gan, embeddings, unets) or a file name"
            only+=("$2")
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; fail 2 "unknown argument $1" ;;
    esac
    shift
done
for name in ${only[@]+"${only[@]}"}; do  # the guard: bash < 4.4 takes an empty array for unbound
    known_name "$name" || fail 2 "--only $name is neither a group (gan, embeddings, unets) nor a file name" \
        "of the list in download_all.sh"
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=${BGW_ROOT:-$repo}
mirror=${BGW_MIRROR:-https://www.dropbox.com/s}
mirror=${mirror%/}
python=${PYTHON:-python3}
downloader=${BGW_DOWNLOADER:-$(command -v wget >/dev/null && echo wget || echo curl)}
case $downloader in wget | curl) ;; *) fail 2 "BGW_DOWNLOADER must be wget or curl, not $downloader" ;; esac
command -v "$downloader" >/dev/null || fail 1 "$downloader is not installed: install wget or curl"
"$python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)' ||
    fail 1 "every file is checked with $python and torch: install torch (see README.md) or set PYTHON"
[ -d "$root" ] || fail 1 "BGW_ROOT $root is not a folder"
cd "$root"

# Downloads go to a temporary folder first; it is removed however the script ends (Ctrl-C included).
tmp_dir=""
trap '[ -z "$tmp_dir" ] || rm -rf -- "$tmp_dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
tmp_dir=$(mktemp -d .downloading.XXXXXX)

failed=()
count=0
for entry in "${FILES[@]}"; do
    read -r group id dest kind <<<"$entry"
    selected "$group" "${dest##*/}" || continue
    count=$((count + 1))
    fetch "$kind" "$id" "$dest" || failed+=("$dest")
done
if [ ${#failed[@]} -gt 0 ]; then
    fail 1 "${#failed[@]} of $count files are missing or unusable: ${failed[*]}"
fi
echo "all $count files are in place and checked"
