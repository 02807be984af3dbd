# tests/bench/fuse_callers.awk — reads `perf script` output of
# fuse:fuse_request_send recorded with -g, prints "COUNT  OPCODE : caller <
# caller ... origin" per distinct kernel call site (unsorted; pipe to sort -rn).
# The FUSE queueing functions are skipped; the origin is the syscall
# (__x64_sys_*, __do_sys_*) or, for requests sent by a kernel thread
# (writeback), the outermost kernel frame.
function flush() {
    if (op == "") return
    key = op " :"
    for (i = 1; i <= n && i <= 2; i++) key = key (i > 1 ? " < " : " ") f[i]
    origin = sys != "" ? sys : f[n]
    if (n > 2) key = key " ... " origin
    c[key]++
    op = ""
}
/fuse:fuse_request_send:/ {
    flush()
    op = "?"
    if (match($0, /\((FUSE|CUSE)_[A-Z_0-9]+\)/)) op = substr($0, RSTART + 1, RLENGTH - 2)
    n = 0; sys = ""
    next
}
/^[ \t]+[0-9a-f]+ / {
    if (op == "" || $3 != "([kernel.kallsyms])") next
    s = $2; sub(/\+0x[0-9a-f]+$/, "", s)
    if (s ~ /^(fuse_dev_queue_req|__fuse_simple_request|fuse_simple_request|fuse_simple_background|fuse_request_queue_and_unlock|fuse_send_one|__fuse_request_send|fuse_request_send_background|flush_bg_queue|fuse_queue_forget)$/) next
    if (s ~ /^(do_syscall_64|entry_SYSCALL_64_after_hwframe|x64_sys_call|ret_from_fork|ret_from_fork_asm)$/) next
    if (sys == "" && s ~ /^(__x64_sys_|__do_sys_|__se_sys_)/) sys = s
    f[++n] = s
    next
}
END { flush(); for (k in c) printf "%7d  %s\n", c[k], k }
