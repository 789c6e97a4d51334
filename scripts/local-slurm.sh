#!/usr/bin/env bash
# A one-node Slurm on this machine, for the Slurm executor's tests and bench/slurm: munged,
# slurmctld and slurmd on localhost with a generated slurm.conf (this machine's CPUs, no
# cgroups, no accounting database).
#
#   scripts/local-slurm.sh start [DIR]   # default DIR /tmp/haps-slurm; prints SLURM_CONF=...
#   scripts/local-slurm.sh stop [DIR]
#   scripts/local-slurm.sh status [DIR]
#
# Needs Debian's slurm-wlm and munge (scripts/setup.sh installs them) and root (the daemons
# run as root here: SlurmUser=root). Clients find the cluster through SLURM_CONF.
set -euo pipefail
cmd=${1:-start}
dir=${2:-${HAPS_SLURM_DIR:-/tmp/haps-slurm}}
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"

stop() {
    for d in slurmd slurmctld; do
        [ -f "$dir/$d.pid" ] && kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
    done
    [ -f "$dir/munged.pid" ] && kill "$(cat "$dir/munged.pid")" 2>/dev/null || true
    sleep 0.5
}

case "$cmd" in
stop) stop; exit 0 ;;
status) scontrol ping && sinfo; exit $? ;;
start) ;;
*) echo "usage: $0 start|stop|status [DIR]" >&2; exit 2 ;;
esac

for tool in munged slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null || { echo "local-slurm: '$tool' is not installed (apt-get install slurm-wlm munge)" >&2; exit 1; }
done
stop
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
host=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))

# munge: a key of this cluster's own, a socket in DIR (no system service needed).
[ -f "$dir/munge/munge.key" ] || { dd if=/dev/urandom bs=1 count=1024 of="$dir/munge/munge.key" status=none; chmod 400 "$dir/munge/munge.key"; }
chmod 700 "$dir/munge"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
       --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munged.seed"

cat > "$conf" <<EOF
ClusterName=haps
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
DefMemPerCPU=1024
MpiDefault=none
ReturnToService=2
MinJobAge=600
InactiveLimit=0
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -f "$conf"
slurmd -f "$conf"
for _ in $(seq 1 60); do
    if scontrol ping >/dev/null 2>&1 && sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
        echo "SLURM_CONF=$conf"
        exit 0
    fi
    sleep 0.5
done
echo "local-slurm: the daemons did not come up; logs in $dir:" >&2
tail -n 20 "$dir"/slurmctld.log "$dir"/slurmd.log "$dir"/munged.log >&2 || true
exit 1
