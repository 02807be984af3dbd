# tests/lib/pool.sh — runs test items a few at a time, then the serial ones
# alone (sourced by tests/run-unit.sh and tests/integration/run.sh).
#
# The sourcing script defines:
#   run_one ITEM   runs one item; its output and result go to files (it
#                  runs in the background, so it sets no variables)
#   report ITEM    prints and counts one finished item (in this shell)

# Waits for one of pool_run's running items to end and reports it.
_pool_reap() {
    local done_pid
    wait -n -p done_pid "${!running[@]}" || true
    report "${running[$done_pid]}"
    unset "running[$done_pid]"
}

# pool_run JOBS SERIAL ITEM... : runs the ITEMs JOBS at a time, in order,
# reporting each as it ends; those whose name (basename, without .sh) is
# in SERIAL (" name name ... ") run afterwards, one at a time.
pool_run() {
    local jobs=$1 serial_names=$2 item name
    local -a serial=()
    local -A running=()         # pid -> item
    shift 2
    for item in "$@"; do
        name=$(basename "$item" .sh)
        case "$serial_names" in *" $name "*) serial+=("$item"); continue ;; esac
        while [ "${#running[@]}" -ge "$jobs" ]; do _pool_reap; done
        run_one "$item" &
        running[$!]=$item
    done
    while [ "${#running[@]}" -gt 0 ]; do _pool_reap; done
    for item in "${serial[@]}"; do
        run_one "$item"
        report "$item"
    done
}
