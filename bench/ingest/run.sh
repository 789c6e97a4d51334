#!/usr/bin/env bash
# bench/ingest: a large model directory (random bytes, like safetensors shards) as a stage's
# input, ingested by a release haps-pipe (hash + snapshot into the store, then the tree the
# stage reads), against the disk-speed peer on the same files in the same run: sha256sum of
# every file, then cp to a new directory and sync (the same work: hash, one durable copy).
# usage: bench/ingest/run.sh            SIZE_MB=4096 FILES=4 HAPS_PIPE=... WORK=bench/work/ingest
#        COLD=1 drops the page cache before each side (root only), so both read from disk.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
size_mb=${SIZE_MB:-4096}
files=${FILES:-4}
work=${WORK:-$here/../work/ingest}
hp=${HAPS_PIPE:-$(command -v haps-pipe || echo "$here/../../.build/release/haps-pipe")}
[ -x "$hp" ] || { echo "no release haps-pipe: scripts/setup.sh, or HAPS_PIPE=..."; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time is needed: apt-get install time"; exit 1; }

cleanup() { chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"; }
cleanup
mkdir -p "$work/model"
trap cleanup EXIT
# The model, the peer's copy and the store's copy at once, with 10% to spare.
need_kb=$((size_mb * 1024 * 33 / 10))
free_kb=$(df -Pk "$work" | awk 'NR == 2 { print $4 }')
[ "$free_kb" -gt "$need_kb" ] || { echo "need $((need_kb / 1024)) MB free under $work, have $((free_kb / 1024)) MB"; exit 1; }

per_mb=$((size_mb / files))
echo "making $files files of $per_mb MB under $work/model"
for i in $(seq 1 "$files"); do
  name=$(printf 'model-%05d-of-%05d.safetensors' "$i" "$files")
  # openssl's keystream: random bytes at ~1 GB/s (it ends by SIGPIPE when head has enough).
  { openssl enc -aes-128-ctr -nosalt -pass pass:"bench$i" -in /dev/zero 2>/dev/null || true; } | head -c $((per_mb << 20)) > "$work/model/$name"
done
echo '{"hidden_size": 4096}' > "$work/model/config.json"
bytes=$(du -sb "$work/model" | cut -f1)
sync

cold() { if [ "${COLD:-0}" = 1 ]; then sync; echo 3 > /proc/sys/vm/drop_caches; fi; }
# Runs a command under GNU time; prints "seconds peak_rss_kb".
measure() {
  local log=$work/time.log
  /usr/bin/time -v -o "$log" "$@" > "$work/cmd.out" 2>&1 || { cat "$work/cmd.out" "$log"; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$log")
  echo "$wall $rss"
}
report() {  # label seconds rss_kb added_bytes
  awk -v l="$1" -v s="$2" -v r="$3" -v a="$4" -v b="$bytes" \
    'BEGIN { printf "%-34s %8.2f s %9.0f MB/s %8.0f MB peak RSS %9.0f MB added\n", l, s, b / s / 1e6, r / 1024, a / 1048576 }'
}

cold
read -r peer_s peer_rss < <(measure sh -c "sha256sum '$work'/model/* > '$work/sums' && cp -r '$work/model' '$work/peer' && sync -f '$work'/peer/*")
peer_added=$(du -sb "$work/peer" | cut -f1)
rm -rf "$work/peer"
cold
read -r cp_s cp_rss < <(measure sh -c "cp -r '$work/model' '$work/peer' && sync -f '$work'/peer/*")
rm -rf "$work/peer"

cat > "$work/spec.json" <<EOF
{"name": "ingest-bench", "stages": {"list": {"type": "command", "inputs": {"model": "$work/model"},
 "params": {"run": "ls -l {inputs.model} > {outputs.files.txt}", "outputs": ["files.txt"]}}}}
EOF
cold
read -r hp_s hp_rss < <(measure "$hp" run "$work/spec.json" --store "$work/store" --plain)
hp_added=$(du -sb "$work/store" | cut -f1)
read -r noop_s _ < <(measure "$hp" run "$work/spec.json" --store "$work/store" --plain)
# Each file is one raw object named by its sha256sum digest (the peer's sums).
while read -r h _; do
  [ -f "$work/store/objects/${h:0:2}/${h:2}.raw" ] || { echo "no raw object $h in the store"; exit 1; }
done < <(grep safetensors "$work/sums")
echo
echo "$((bytes >> 20)) MB in $files files; $(nproc) cores; $(df -PT "$work" | awk 'NR == 2 { print $2 }') at $work; COLD=${COLD:-0}"
report "haps-pipe run (import + tree)" "$hp_s" "$hp_rss" "$hp_added"
report "peer: sha256sum + cp + sync" "$peer_s" "$peer_rss" "$peer_added"
report "disk: cp + sync" "$cp_s" "$cp_rss" "$peer_added"
awk -v a="$hp_s" -v b="$peer_s" -v n="$noop_s" 'BEGIN { printf "haps-pipe / peer time: %.2fx; no-op rerun: %.2f s\n", a / b, n }'
