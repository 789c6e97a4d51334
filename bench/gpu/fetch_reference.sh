#!/usr/bin/env bash
# Exports the reference's HotpotQA/ (and requirements.txt) from a bare git repository of
# zihangtian/HAPS into DEST, for bench/gpu/rl_bench.sh (which copies it again before patching
# anything). DEST should be an ignored folder, e.g. .build-gpu/haps-reference: the
# reference's files are never committed here.
#
#   bench/gpu/fetch_reference.sh SRC_GIT_DIR DEST [COMMIT]
#
# A file whose blob the repository lacks (a partial mirror may hold only the tree of its
# largest files: here HotpotQA/dataset/train.jsonl and valid.jsonl, which rl_batch.py does not
# read) is left out and named; the export fails only if one of the files the benchmark runs
# is missing.
set -euo pipefail
src=${1:?usage: fetch_reference.sh SRC_GIT_DIR DEST [COMMIT]}
dest=${2:?usage: fetch_reference.sh SRC_GIT_DIR DEST [COMMIT]}
commit=$(git --git-dir "$src" rev-parse "${3:-HEAD}")
mkdir -p "$dest"
git --git-dir "$src" ls-tree -r "$commit" -- HotpotQA requirements.txt | while read -r mode type blob path; do
  [ "$type" = blob ] || continue
  if git --git-dir "$src" cat-file -e "$blob" 2>/dev/null; then
    mkdir -p "$dest/$(dirname "$path")"
    git --git-dir "$src" cat-file blob "$blob" > "$dest/$path"
  else
    echo "fetch_reference: $path is not in $src (left out)" >&2
  fi
done
for f in joint_rl/rl_batch.py joint_rl/agent.py joint_rl/lora_generator.py joint_rl/utils.py joint_rl/rl_dataset/train.jsonl \
         joint_rl/rl_dataset/valid.jsonl dataset/test.jsonl prompt/router_template.txt prompt/system_router.txt \
         prompt/student/prompt1.txt prompt/student/prompt2.txt prompt/teacher/prompt1.txt prompt/teacher/prompt2.txt; do
  [ -s "$dest/HotpotQA/$f" ] || { echo "fetch_reference: HotpotQA/$f is missing: the benchmark needs it" >&2; exit 1; }
done
echo "$commit" > "$dest/COMMIT"
echo "$dest: HotpotQA/ of $commit"
