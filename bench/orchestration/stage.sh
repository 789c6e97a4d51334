#!/bin/sh
# The trivial stage every tool runs: concatenate the inputs, append the parameters, and log
# the execution (so the benchmark can check how many stages each tool ran).
# usage: stage.sh NAME PARAMS OUTPUT [INPUT...]
name=$1; params=$2; out=$3; shift 3
mkdir -p "$(dirname "$out")"
if [ $# -gt 0 ]; then cat "$@" > "$out"; else : > "$out"; fi
echo "$name $params" >> "$out"
echo "$name" >> "${EXECUTIONS_LOG:-executions.log}"
