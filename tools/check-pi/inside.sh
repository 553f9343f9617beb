#!/bin/bash
# Runs inside an arm64 root (see check-pi): the README's Raspberry Pi install block,
# then what a user does first. One line per check in /check-pi/results.tsv:
# name, PASS or FAIL, what was seen. A failed check does not stop the later ones.
set -u
cd /home/pi/edgecam
out=/check-pi
results=$out/results.tsv
checks="/check-pi/checks.py"
: > "$results"
: > "$out/checks.log"
export EDGECAM_MODEL_DIR=/home/pi/edgecam/models
edgecam=.venv/bin/edgecam

result() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$results"; }
check() {  # name, command...: PASS when it exits 0; its last line says what it saw
  local name=$1 rc detail
  shift
  "$@" > "$out/step.out" 2> "$out/step.err"; rc=$?
  detail=$(grep -v '^\s*$' "$out/step.out" | tail -1)
  [ $rc = 0 ] || [ -n "$detail" ] || detail="exit $rc: $(grep -v '^\s*$' "$out/step.err" | tail -1)"
  detail=${detail//$'\t'/ }
  result "$name" "$([ $rc = 0 ] && echo PASS || echo FAIL)" "${detail:0:400}"
  { echo "== $name (exit $rc)"; cat "$out/step.out" "$out/step.err"; } >> "$out/checks.log"
}

. /etc/os-release
system_numpy=$(python3 -c 'import numpy; print(numpy.__version__)')
result "the root" PASS "Debian $VERSION_CODENAME $(uname -m), Python $(python3 -c 'import platform; print(platform.python_version())'), apt NumPy $system_numpy"

# The stand-in imports with the system's Python, as apt's picamera2 does.
check "stand-in picamera2 imports (system Python)" python3 "$checks" standin

# -- the README's install block, as written ----------------------------------------
first_block_after() {  # the first ```sh block after a line matching $1
  awk -v pat="$1" '$0 ~ pat {m=1; next} m && /^```/ {if (inb) exit; inb=1; next} inb {print}' README.md
}
block=$(first_block_after '<!-- check-pi: install')
note=""
if [ -z "$block" ]; then  # a README from before this check: its Raspberry Pi OS paragraph's block
  block=$(first_block_after 'Raspberry Pi OS \\(Bookworm, Trixie\\)')
  note="(no check-pi block in this README; its Raspberry Pi OS block) "
fi
note=$note$(printf '%s\n' "$block" | sed 's/ *#.*//' | grep -v '^\s*$' | paste -sd ';' -)
apt-get update -qq > /dev/null 2>&1  # a Pi has its package lists; a fresh debootstrap root may not
printf '%s\n' "$block" > "$out/install.sh"
if bash -e "$out/install.sh" > "$out/install.log" 2>&1; then
  result "install as the README says" PASS "$note"
else
  result "install as the README says" FAIL "exit $?: $(grep -v '^\s*$' "$out/install.log" | tail -1)"
fi

check "venv keeps the system's NumPy" .venv/bin/python "$checks" venv-numpy "$system_numpy"
check "picamera2 imports in the venv" .venv/bin/python "$checks" picamera2-imports
check "exactly one OpenCV, and it imports" .venv/bin/python "$checks" one-opencv
check "edgecam models fetch --from the mirror" bash -c \
  "$edgecam models fetch mobilenet_v3_small --from /shared/models 2>&1 | tail -1; exit \${PIPESTATUS[0]}"
check "edgecam classify the three photos" bash -c \
  "$edgecam classify --json /shared/images/cat.bmp /shared/images/bird.bmp /shared/images/grace_hopper.bmp \
     > $out/photos.json && python3 $checks photos $out/photos.json"
check "edgecam run on the clip, headless, with a log" bash -c \
  "$edgecam run --source /shared/video/imagenet20_640x480_30fps.mp4 --display none --log $out/clip.jsonl \
     > $out/clip.stdout 2> $out/clip.err && python3 $checks clip $out/clip.jsonl /shared/video/imagenet20_segments.csv"

run_until() {  # jsonl, count, stderr, command...: run it until the log has COUNT lines, then SIGTERM it
  local log=$1 count=$2 err=$3 pid i rc
  shift 3
  "$@" > "${err%.err}.stdout" 2> "$err" &
  pid=$!
  for i in $(seq 600); do
    [ -f "$log" ] && [ "$(wc -l < "$log")" -ge "$count" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.5
  done
  kill -TERM $pid 2>/dev/null
  wait $pid; rc=$?
  [ $rc = 0 ] || grep '^edgecam: ' "$err" | tail -1
  return $rc
}

camera() {  # edgecam run --source picamera2 against the stand-in, until 20 results, then SIGTERM
  export EDGECAM_FAKE_PICAMERA2_MODEL=$FAKE_MODEL EDGECAM_FAKE_PICAMERA2_PICTURES=/shared/images/cat.bmp
  export EDGECAM_FAKE_PICAMERA2_REPORT=$out/camera-report.json
  run_until "$out/camera.jsonl" 20 "$out/camera.err" \
    $edgecam run --source picamera2 --display none --log "$out/camera.jsonl" || return $?
  python3 "$checks" camera "$out/camera.jsonl" "$out/camera-report.json" "$out/camera.err" "$FAKE_MODEL"
}
check "edgecam run --source picamera2 (the fake camera)" camera

camera_controls() {  # source: controls (docs/camera.md) reach the stand-in camera, with this board's sensor
  local sensor=imx219 dir=$out/controls
  [ "$FAKE_MODEL" = pi5 ] && sensor=imx708  # Pi 5: Camera Module 3 (autofocus); Pi 4: Camera v2 (fixed focus)
  mkdir -p "$dir"
  printf 'source:\n  type: picamera2\n  rotation: 180\n  exposure: long\n  max_exposure_ms: 100\n  tuning_file: %s_noir.json\n' \
    "$sensor" > "$dir/config.yaml"
  $edgecam check-config "$dir/config.yaml" > "$dir/check-config.out" 2>&1 || { tail -1 "$dir/check-config.out"; return 1; }
  export EDGECAM_FAKE_PICAMERA2_MODEL=$FAKE_MODEL EDGECAM_FAKE_PICAMERA2_PICTURES=/shared/images/cat.bmp
  export EDGECAM_FAKE_PICAMERA2_REPORT=$dir/report.json
  run_until "$dir/run.jsonl" 5 "$dir/run.err" \
    $edgecam run --config "$dir/config.yaml" --display none --log "$dir/run.jsonl" || return $?
  python3 "$checks" camera-controls "$dir/report.json" "$FAKE_MODEL"
}
check "camera controls: AF by sensor, flips, exposure, tuning file (the fake camera)" camera_controls

# The desktop: what a Pi OS desktop has that Lite lacks (the libraries the GUI OpenCV
# wheel loads), then the same install in a fresh copy of the checkout.
desktop() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make libgl1 libglib2.0-0 libsm6 libice6 libxext6 libxcb1 \
    > "$out/desktop-apt.log" 2>&1 || { echo "apt-get install failed"; return 1; }
  (cd /home/pi/edgecam-desktop && make install > "$out/desktop.log" 2>&1) || { tail -1 "$out/desktop.log"; return 1; }
  (cd /home/pi/edgecam-desktop && .venv/bin/python "$checks" one-opencv gui)
}
check "desktop: make install picks the GUI OpenCV" desktop

# For the host's comparison with x86: the model input and the top 5 of the 100 photos.
$edgecam classify --json --top-k 5 /shared/images/imagenet-sample/*.JPEG > "$out/imagenet.json" 2> "$out/imagenet.err" \
  || result "classify the 100 ImageNet photos" FAIL "$(tail -1 "$out/imagenet.err")"
.venv/bin/python "$checks" tensors "$out/tensors.npz" /shared/images/imagenet-sample > /dev/null 2> "$out/tensors.err" \
  || result "preprocess the 100 ImageNet photos" FAIL "$(tail -1 "$out/tensors.err")"
exit 0
