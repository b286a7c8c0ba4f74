#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, so the tests can run rejudge as a real array job.
#
#   scripts/slurm.sh [start]  installs slurm-wlm and munge with apt-get when missing, then starts
#                             munged, slurmctld and slurmd and waits until the node is idle;
#                             prints the slurm.conf path on its last line (export it as
#                             SLURM_CONF; it is /etc/slurm/slurm.conf unless a foreign file is
#                             there). Quick and harmless when the cluster already runs.
#   scripts/slurm.sh check    starts it when needed, then runs a 4-task array job and checks
#                             every task saw its own id, the task count and the submit directory.
#   scripts/slurm.sh stop     cancels leftover jobs and stops the daemons this script started.
#   scripts/slurm.sh status   says whether it runs (exit 0) or not (exit 3).
#
# Starting and stopping need root (or sudo): slurmd runs as root to start jobs as their owner.
# It does not use systemd: CI machines and containers often run without it. State, spool and logs
# live under /var/lib/rejudge-slurm, away from any real Slurm installation on the machine.
set -euo pipefail

# Debian keeps the daemons and munge's tools in sbin, which plain users lack on their PATH.
PATH="$PATH:/usr/sbin:/sbin"

dir=/var/lib/rejudge-slurm
etc_conf=/etc/slurm/slurm.conf
marker="# Written by rejudge's scripts/slurm.sh, which rewrites it on each start."
munge_key=/etc/munge/munge.key
# Upper bound on waiting for the node to come up; a healthy start takes a few seconds.
start_timeout=60

say() { echo "rejudge: $*" >&2; }

as_root() {
  if ((EUID == 0)); then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    say "need root or sudo for: $*"
    return 1
  fi
}

# The file the cluster uses: /etc/slurm/slurm.conf, so that plain `sbatch` finds it, unless someone
# else's file is there, which is never overwritten; then a private one that callers must point
# SLURM_CONF at. A SLURM_CONF inherited from the caller must not redirect this script anywhere else.
pick_conf() {
  if [[ ! -e $etc_conf ]] || grep -qxF "$marker" "$etc_conf" 2>/dev/null; then
    conf=$etc_conf
  else
    conf=$dir/slurm.conf
  fi
  export SLURM_CONF=$conf
}

node_name() { hostname -s; }

conf_text() {
  local node cpus
  node=$(node_name)
  cpus=$(nproc)
  # Four one-CPU tasks should run side by side even on a two-core machine, as on a real
  # cluster: shards that mostly wait on a judge server lose nothing by sharing cores, and the
  # array then needs one scheduling pass instead of waiting for slots to free up.
  ((cpus < 4)) && cpus=4
  cat <<EOF
$marker
# Delete the line above to keep your own edits; the script then leaves this file alone.
ClusterName=rejudge
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# No cgroups: containers and CI machines often cannot delegate them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# Hand out single CPUs rather than whole nodes, so array tasks share the node.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Trust the CPU count below over the hardware, which may have fewer.
SlurmdParameters=config_overrides
ReturnToService=2
# Otherwise a job submitted within 3 s of the last scheduling pass waits out the rest of those
# 3 s, and then sbatch --wait (which polls after 2, 10, 42 s...) answers 8 s late.
SchedulerParameters=batch_sched_delay=0
MailProg=/bin/true
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=main Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

# The pid in a pid file when that process still runs under the expected name (pids get reused).
live_pid() {
  local file=$1 name=$2 pid
  pid=$(cat "$file" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
  echo "$pid"
}

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

node_state() {
  local out
  out=$(timeout 5 sinfo -h -N -n "$(node_name)" -o %T 2>/dev/null) || true
  echo "${out%%$'\n'*}"
}

# Passes of the main scheduler so far. The controller makes its first one about 3 s after it
# starts and none before, whatever is queued.
sched_cycles() {
  local out
  out=$(timeout 5 sdiag 2>/dev/null |
    awk '/^Main schedule/ { main = 1 } main && /Total cycles:/ { print $3; exit }') || true
  echo "${out:-0}"
}

# Up means accepting work; idle, or busy with jobs someone submitted.
cluster_up() {
  live_pid "$dir/run/slurmctld.pid" slurmctld >/dev/null &&
    live_pid "$dir/run/slurmd.pid" slurmd >/dev/null &&
    [[ $(node_state) =~ ^(idle|mixed|allocated|completing)$ ]]
}

show_logs() {
  local f
  for f in "$dir"/log/*.log "$dir"/log/*.out /var/log/munge/munged.log; do
    if as_root test -s "$f"; then
      echo "--- last lines of $f" >&2
      as_root tail -n 25 "$f" >&2
    fi
  done
}

# Starts a self-daemonizing program with its early errors (before it opens its own log) kept in
# $dir/log/<name>.out, and without our stdout, so callers reading it through a pipe are not held
# open by the daemon.
launch() {
  local name=$1
  shift
  # shellcheck disable=SC2016 # the inner shell expands them
  as_root bash -c 'exec "$@" </dev/null >>"$0" 2>&1' "$dir/log/$name.out" "$@"
}

stop_pid_file() {
  local file=$1 name=$2 pid i
  if pid=$(live_pid "$file" "$name"); then
    say "stopping $name ($pid)"
    as_root kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      [[ -d /proc/$pid ]] || break
      sleep 0.1
    done
    if [[ -d /proc/$pid ]]; then
      as_root kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  as_root rm -f "$file"
}

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  command -v munged >/dev/null || missing+=(munge)
  ((${#missing[@]} == 0)) && return 0
  if ! command -v apt-get >/dev/null; then
    say "please install slurm-wlm and munge (no apt-get here to do it)"
    exit 1
  fi
  local was_running=no t0
  t0=$(now)
  munge_works 2>/dev/null && was_running=yes
  say "installing slurm-wlm and munge with apt-get"
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge >&2
  # Without systemd and without a policy-rc.d that forbids it, the packages' init scripts start
  # munged right away (slurmd and slurmctld only when a slurm.conf exists; their pid files are
  # then ours anyway). A munged that only this install brought up counts as ours.
  if [[ $was_running == no ]] && munge_works; then
    as_root install -d -m 0755 "$dir/run"
    as_root cp /run/munge/munged.pid "$dir/run/munged.pid" 2>/dev/null || true
  fi
  say "installed in $(elapsed "$t0") s"
}

# EPOCHREALTIME writes the locale's decimal mark, which awk may not read.
now() { echo "${EPOCHREALTIME/[!0-9]/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

start_munge() {
  if ! as_root test -s "$munge_key"; then
    say "creating the munge key $munge_key"
    as_root install -d -o munge -g munge -m 0700 /etc/munge
    as_root dd if=/dev/urandom of="$munge_key.new" bs=1024 count=1 status=none
    as_root chown munge:munge "$munge_key.new"
    as_root chmod 0400 "$munge_key.new"
    as_root mv "$munge_key.new" "$munge_key"
  fi
  munge_works && return 0
  say "starting munged"
  # /run is emptied on boot and only systemd's tmpfiles would recreate munge's socket folder.
  as_root install -d -o munge -g munge -m 0755 /run/munge
  as_root install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
  launch munged runuser -u munge -- munged
  local i
  for ((i = 0; i < 50; i++)); do
    if munge_works; then
      as_root cp /run/munge/munged.pid "$dir/run/munged.pid"
      return 0
    fi
    sleep 0.1
  done
  say "munged did not come up"
  show_logs
  exit 1
}

start() {
  pick_conf
  install_packages
  local want
  want=$(conf_text)
  if [[ -r $conf && "$(cat "$conf")" == "$want" ]] && munge_works && cluster_up; then
    say "slurm already runs ($conf)"
    return 0
  fi
  local t0
  t0=$(now)
  as_root install -d -m 0755 "$dir" "$dir/run" "$dir/log" "$dir/state" "$dir/spool" \
    "$(dirname "$conf")"
  start_munge
  # A config change only takes effect on restart, and a clean restart costs a second or two.
  stop_pid_file "$dir/run/slurmd.pid" slurmd
  stop_pid_file "$dir/run/slurmctld.pid" slurmctld
  printf '%s\n' "$want" | as_root tee "$conf.new" >/dev/null
  as_root chmod 0644 "$conf.new"
  as_root mv "$conf.new" "$conf"
  # A private copy from a time when someone else's file sat in /etc would only mislead.
  [[ $conf == "$etc_conf" ]] && as_root rm -f "$dir/slurm.conf"
  say "starting slurmctld and slurmd with $conf"
  # -c drops jobs and node states left from an earlier run: a test cluster starts clean.
  launch slurmctld slurmctld -f "$conf" -c
  launch slurmd slurmd -f "$conf" -N "$(node_name)"
  local state="" launched=$SECONDS
  while ((SECONDS - launched < start_timeout)); do
    state=$(node_state)
    # Ready once the scheduler has run too: a job submitted before its first pass starts only at
    # that pass, and sbatch --wait, having looked after 2 s, looks again only after 10 s.
    [[ $state == idle ]] && (($(sched_cycles) > 0)) && break
    # Both write their pid files within moments; a daemon gone after that has failed.
    if ((SECONDS - launched >= 2)) && { ! live_pid "$dir/run/slurmctld.pid" slurmctld >/dev/null ||
      ! live_pid "$dir/run/slurmd.pid" slurmd >/dev/null; }; then
      break
    fi
    sleep 0.5
  done
  if [[ $state != idle ]] || (($(sched_cycles) == 0)); then
    say "slurm did not come up (node state: ${state:-unknown}, scheduler passes: $(sched_cycles))"
    show_logs
    exit 1
  fi
  say "slurm is up in $(elapsed "$t0") s: node $(node_name) idle, config $conf, logs in $dir/log"
}

stop() {
  pick_conf
  if live_pid "$dir/run/slurmctld.pid" slurmctld >/dev/null; then
    # Without cgroups nothing reaps a job's processes once slurmd is gone, and the next start
    # forgets every old job, so they would run on unseen.
    as_root timeout 10 scancel --partition=main 2>/dev/null || true
    local i
    for ((i = 0; i < 40; i++)); do
      [[ -z $(timeout 10 squeue -h -o %i 2>/dev/null) ]] && break
      sleep 0.25
    done
  fi
  stop_pid_file "$dir/run/slurmd.pid" slurmd
  stop_pid_file "$dir/run/slurmctld.pid" slurmctld
  stop_pid_file "$dir/run/munged.pid" munged
  say "slurm stopped"
}

status() {
  pick_conf
  local d pid parts=() alive=0
  for d in munged slurmctld slurmd; do
    if pid=$(live_pid "$dir/run/$d.pid" "$d"); then
      parts+=("$d $pid")
      alive=$((alive + 1))
    else
      parts+=("$d -")
    fi
  done
  if cluster_up; then
    echo "running: node $(node_name) $(node_state); ${parts[*]}; SLURM_CONF=$conf"
  elif ((alive == 0)); then
    echo "stopped"
    exit 3
  else
    echo "not ready (node state: $(node_state)): ${parts[*]}; logs in $dir/log"
    exit 3
  fi
}

check() {
  start >&2
  # Global, not local: the EXIT trap runs after this function has returned.
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/rejudge-slurm-check.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  tmp=$(cd "$tmp" && pwd -P)
  cat >"$tmp/task.sh" <<EOF
#!/bin/bash
id=\$SLURM_ARRAY_TASK_ID
echo "\$id \${SLURM_ARRAY_TASK_COUNT:-unset} \$(pwd -P)" >"$tmp/task-\$id"
EOF
  local t0 rc=0 jobid
  t0=$(now)
  # The job's own time limit ends a stuck array; timeout covers a controller that stops answering.
  (cd "$tmp" && timeout 180 sbatch --wait --parsable --array=0-3 --ntasks=1 --cpus-per-task=1 \
    --time=2 --job-name=rejudge-check --output="$tmp/slurm-%A_%a.out" task.sh \
    >"$tmp/jobid") || rc=$?
  local secs
  secs=$(elapsed "$t0")
  jobid=$(cut -d';' -f1 "$tmp/jobid" 2>/dev/null || true)
  local i ok=yes line
  for i in 0 1 2 3; do
    line=$(cat "$tmp/task-$i" 2>/dev/null || echo "missing")
    if [[ $line != "$i 4 $tmp" ]]; then
      say "task $i wrote '$line', expected '$i 4 $tmp'"
      ok=no
    fi
  done
  if [[ $rc != 0 || $ok != yes ]]; then
    say "check failed (sbatch exit $rc, job ${jobid:-none}) after $secs s"
    [[ -n $jobid ]] && { timeout 10 scancel "$jobid" 2>/dev/null || true; }
    cat "$tmp"/slurm-*.out >&2 2>/dev/null || true
    show_logs
    exit 1
  fi
  echo "slurm check passed: 4 array tasks (job $jobid) in $secs s"
}

case "${1:-start}" in
  start)
    start
    echo "$conf"
    ;;
  check) check ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 [start|check|stop|status]" >&2
    exit 2
    ;;
esac
