#!/bin/bash
# The checks of tests/systemd (see mod.rs), run inside the container at every
# boot by ka-check.service, once everything else has started. /ka-test/boot
# holds the boot's number; the results go to /ka-test/result-N: for each
# check a line `=== NAME`, what it printed, a line `=== NAME.rc` and its exit
# status. Then the container powers off, whatever happened.
#
# svc.service runs `peer connect`, which appends one line per connection
# to /run/svc.log (pid=P seq=N keepalive=0|1 idle=S ...), a new connection
# each second; listener.service runs `peer listen`. Both are static.
set -u
dir=/ka-test
boot=$(cat "$dir/boot")
exec >"$dir/result-$boot.partial" 2>&1

check() {
    local name=$1
    shift
    echo "=== $name"
    "$@" 2>&1
    local rc=$?
    echo "=== $name.rc"
    echo "$rc"
}

finish() {
    check journal journalctl -b --no-pager -o short-monotonic
    mv "$dir/result-$boot.partial" "$dir/result-$boot"
    systemctl poweroff --no-block
}
trap finish EXIT

# Waits (30 s at most) until no job but ours is queued: the boot is over.
settle() {
    local i
    for i in $(seq 300); do
        systemctl list-jobs --no-legend | grep -qv ka-check.service || return 0
        sleep 0.1
    done
    echo "still starting:"
    systemctl list-jobs --no-legend
    return 1
}

# The first line svc.service's client wrote since /run/svc.log was removed
# (or since boot): its first connection. Waits 10 s at most.
first_report() {
    local i
    for i in $(seq 100); do
        [ -s /run/svc.log ] && break
        sleep 0.1
    done
    head -n 1 /run/svc.log
}

# The client's latest line, once it contains $1 (10 s at most).
report_with() {
    local i
    for i in $(seq 100); do
        tail -n 1 /run/svc.log 2>/dev/null | grep -qF -- "$1" && break
        sleep 0.1
    done
    tail -n 1 /run/svc.log
}

# Restarts svc.service and prints its first connection.
restart_svc() {
    rm -f /run/svc.log
    systemctl restart svc.service || return
    first_report
}

check settle settle
check cgroup findmnt -n -o FSTYPE /sys/fs/cgroup
check bpffs findmnt -n -o FSTYPE /sys/fs/bpf

case $boot in
1)
    # (a) the package, its library, its man page, its bash completion.
    check dpkg dpkg -i "$dir/keepalive.deb"
    check run keepalive run -- keepalive check
    check man man -P cat keepalive-run
    check man7 man -P cat 7 libkeepalive
    check completion bash -c '
        . /usr/share/bash-completion/completions/keepalive || exit
        COMP_WORDS=(keepalive en)
        COMP_CWORD=1
        _keepalive keepalive en keepalive
        printf "%s\n" "${COMPREPLY[@]}"'
    # (b) the static client, before and after enforce --persist, and after a
    # restart (a new cgroup: the drop-in enforces again before it starts).
    check before first_report
    check enforce keepalive enforce --unit svc.service --idle 77 --persist
    check enforced report_with keepalive=1
    check dropin systemctl cat svc.service
    check restarted restart_svc
    check status keepalive enforce --status --json
    ;;
2)
    # (b) after a reboot; (c) --remove.
    check rebooted first_report
    check status keepalive enforce --status --json
    check remove keepalive enforce --unit svc.service --remove --json
    check pins find /sys/fs/bpf -mindepth 1
    check dropin systemctl cat svc.service
    check removed_status keepalive enforce --status --json
    check removed restart_svc
    # (d) the global preload, in effect from the next boot.
    check global keepalive install --global
    check preload cat /etc/ld.so.preload
    ;;
3)
    # (d) every unit came up under the global preload; python3 has keepalive,
    # the static client has not (no preload reaches it).
    check failed systemctl --failed --no-legend --plain
    check python python3 -c '
import socket
s = socket.create_connection(("127.0.0.1", 7777))
print("keepalive=%d idle=%d" % (
    s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)))'
    check static first_report
    check host_status keepalive status
    # (e) removing the package takes our line out of /etc/ld.so.preload.
    check apt env DEBIAN_FRONTEND=noninteractive apt-get remove -y keepalive
    check preload cat /etc/ld.so.preload
    check next_true /bin/true
    check next_python python3 -c 'print("ok")'
    ;;
4)
    # (e) and the next boot: every unit up, no loader error anywhere.
    check failed systemctl --failed --no-legend --plain
    check next_python python3 -c 'print("ok")'
    ;;
esac
