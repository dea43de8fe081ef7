#!/bin/bash
# The checks of tests/systemd (see mod.rs), run inside the container at every
# boot by ka-check.service, once everything else has started. /ka-test/boot
# holds the boot's number; the results go to /ka-test/result-N: for each
# check a line `=== NAME`, what it printed, a line `=== NAME.rc` and its exit
# status. Then the container powers off, whatever happened.
#
# svc.service runs `peer connect`, which appends one line per connection
# to /run/svc.log (pid=P seq=N keepalive=0|1 idle=S ...), a new connection
# each second; sliced.service, in test.slice, does the same into
# /run/sliced.log; listener.service runs `peer listen`. All are static.
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

# The first line a client wrote since its log ($1, /run/svc.log if not
# given) was removed (or since boot): its first connection. Waits 10 s at
# most.
first_report() {
    local log=${1:-/run/svc.log} i
    for i in $(seq 100); do
        [ -s "$log" ] && break
        sleep 0.1
    done
    head -n 1 "$log"
}

# A client's latest line, once it contains $1 (10 s at most); the log is
# $2, /run/svc.log if not given.
report_with() {
    local log=${2:-/run/svc.log} i
    for i in $(seq 100); do
        tail -n 1 "$log" 2>/dev/null | grep -qF -- "$1" && break
        sleep 0.1
    done
    tail -n 1 "$log"
}

# Restarts a client's service ($1, svc by default) and prints its first
# connection.
restart_svc() {
    local unit=${1:-svc}
    rm -f "/run/$unit.log"
    systemctl restart "$unit.service" || return
    first_report "/run/$unit.log"
}

instance=keepalive-enforce@test.slice.service
# What `enforce --unit test.slice --persist` writes: the instance's drop-in
# and the two links that enable it.
slice_files="/etc/systemd/system/$instance.d/50-keepalive.conf
/etc/systemd/system/multi-user.target.wants/$instance
/etc/systemd/system/test.slice.wants/$instance"

# Each of slice_files: where a link points, `file` for a file, `absent`.
show_slice_files() {
    local f
    for f in $slice_files; do
        if [ -L "$f" ]; then
            echo "$f -> $(readlink "$f")"
        elif [ -e "$f" ]; then
            echo "$f file"
        else
            echo "$f absent"
        fi
    done
    # The drop-in's directory, left behind once the drop-in is gone.
    [ -e "/etc/systemd/system/$instance.d" ] &&
        [ ! -e "/etc/systemd/system/$instance.d/50-keepalive.conf" ] &&
        echo "/etc/systemd/system/$instance.d left"
    [ -e /etc/systemd/system/keepalive-enforce@.service ] &&
        echo "/etc/systemd/system/keepalive-enforce@.service written"
    return 0
}

# Installs the second, newer .deb over the first while /bin/true runs in a
# loop beside it; what the loop's programs printed goes to
# /run/upgrade.stderr, how many ran to /run/upgrade.runs. The library's
# inode before and after shows it was replaced.
upgrade() {
    local lib=/usr/lib/keepalive/libkeepalive.so rc
    rm -f /run/upgrade.stop /run/upgrade.stderr
    : >/run/upgrade.stderr
    (
        n=0
        while [ ! -e /run/upgrade.stop ]; do
            /bin/true 2>>/run/upgrade.stderr
            n=$((n + 1))
        done
        echo "$n" >/run/upgrade.runs
    ) &
    local loop=$!
    echo "inode before: $(stat -c %i "$lib")"
    dpkg -i "$dir/keepalive-upgrade.deb"
    rc=$?
    echo "inode after: $(stat -c %i "$lib")"
    touch /run/upgrade.stop
    wait "$loop"
    echo "runs during the upgrade: $(cat /run/upgrade.runs)"
    return "$rc"
}

python_socket() {
    python3 -c '
import socket
s = socket.create_connection(("127.0.0.1", 7777))
print("keepalive=%d idle=%d" % (
    s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)))'
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
    # The slice: enforce --persist on test.slice reaches sliced.service's
    # running client and enables our packaged template's instance.
    check sliced_before first_report /run/sliced.log
    check slice_enforce keepalive enforce --unit test.slice --idle 66 --persist
    check sliced_enforced report_with idle=66 /run/sliced.log
    check slice_files show_slice_files
    check slice_enabled systemctl is-enabled "$instance"
    check slice_wants systemctl show -p Wants --value test.slice
    check slice_unit systemctl cat "$instance"
    check status keepalive enforce --status --json
    ;;
2)
    # (b) after a reboot; (c) --remove; the slice's enforcement after a
    # reboot, and removed.
    check rebooted first_report
    # The slice came up again, and our instance with it. Its first
    # connection races the instance (see mod.rs); the next ones have idle 66.
    check sliced_rebooted first_report /run/sliced.log
    check sliced_rebooted_enforced report_with idle=66 /run/sliced.log
    check slice_instance systemctl show -p ActiveState -p Result -p ExecMainStatus "$instance"
    check status keepalive enforce --status --json
    check remove keepalive enforce --unit svc.service --remove --json
    check remove_slice keepalive enforce --unit test.slice --remove --json
    check pins find /sys/fs/bpf -mindepth 1
    check dropin systemctl cat svc.service
    check slice_files show_slice_files
    check slice_enabled systemctl is-enabled "$instance"
    check slice_wants systemctl show -p Wants --value test.slice
    check slice_instance_removed systemctl is-active "$instance"
    check removed_status keepalive enforce --status --json
    check removed restart_svc
    check sliced_removed restart_svc sliced
    # (d) the global preload, in effect from now on (every program reads
    # /etc/ld.so.preload) and from the next boot.
    check global keepalive install --global
    check preload cat /etc/ld.so.preload
    # The upgrade under it: a newer .deb over this one, programs starting
    # all along.
    check upgrade upgrade
    check upgrade_stderr cat /run/upgrade.stderr
    check version dpkg-query -W -f '${Version}\n' keepalive
    check upgraded_preload cat /etc/ld.so.preload
    check upgraded_true /bin/true
    check upgraded_python python_socket
    check upgraded_status keepalive status
    ;;
3)
    # (d) every unit came up under the global preload (of the upgraded
    # package); python3 has keepalive,
    # the static client has not (no preload reaches it).
    # This is also the reboot after the upgrade.
    check failed systemctl --failed --no-legend --plain
    check version dpkg-query -W -f '${Version}\n' keepalive
    check python python_socket
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
