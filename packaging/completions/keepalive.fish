# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_keepalive_global_optspecs
    string join \n h/help V/version
end

function __fish_keepalive_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_keepalive_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_keepalive_using_subcommand
    set -l cmd (__fish_keepalive_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c keepalive -n "__fish_keepalive_needs_command" -s h -l help -d 'Print help'
complete -c keepalive -n "__fish_keepalive_needs_command" -s V -l version -d 'Print version'
complete -c keepalive -n "__fish_keepalive_needs_command" -f -a "run" -d 'Run a program with TCP keepalive on its sockets (LD_PRELOAD)'
complete -c keepalive -n "__fish_keepalive_needs_command" -f -a "check" -d 'Create a TCP socket and print its keepalive options (the HOWTO\'s test program)'
complete -c keepalive -n "__fish_keepalive_needs_command" -f -a "sysctl" -d 'Show or set the kernel defaults, net.ipv4.tcp_keepalive_* (HOWTO 3.1, 3.2)'
complete -c keepalive -n "__fish_keepalive_needs_command" -f -a "install" -d 'Install libkeepalive.so; with --global, preload it into every program'
complete -c keepalive -n "__fish_keepalive_needs_command" -f -a "uninstall" -d 'Remove libkeepalive.so from /etc/ld.so.preload (--global)'
complete -c keepalive -n "__fish_keepalive_needs_command" -f -a "ls" -d 'List TCP connections and their keepalive state (sock_diag)'
complete -c keepalive -n "__fish_keepalive_needs_command" -f -a "attach" -d 'Switch keepalive on in a running process (pidfd_getfd)'
complete -c keepalive -n "__fish_keepalive_needs_command" -f -a "enforce" -d 'Enforce keepalive in the kernel for every TCP connection of a cgroup'
complete -c keepalive -n "__fish_keepalive_needs_command" -f -a "doctor" -d 'Find what will cut idle connections on this host, and how to fix it'
complete -c keepalive -n "__fish_keepalive_needs_command" -f -a "metrics" -d 'Prometheus metrics of keepalive on this host'
complete -c keepalive -n "__fish_keepalive_needs_command" -f -a "status" -d 'Show everything keepalive has put in effect on this host'
complete -c keepalive -n "__fish_keepalive_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c keepalive -n "__fish_keepalive_using_subcommand run" -l idle -d 'Idle time before the first probe (TCP_KEEPIDLE): 1s..32767s' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand run" -l interval -d 'Time between probes (TCP_KEEPINTVL): 1s..32767s' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand run" -l count -d 'Unanswered probes before the connection is dropped (TCP_KEEPCNT): 1..127' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand run" -l user-timeout -d 'Give up on unacknowledged data after this long (TCP_USER_TIMEOUT)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand run" -l max-idle -d 'With --enforce: keepalive always on, idle and interval at most DURATION, whatever the command\'s programs set (see `enforce --max-idle`)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand run" -l off -d 'Switch keepalive off (KEEPALIVE=off): for children of a program that runs under a global preload'
complete -c keepalive -n "__fish_keepalive_using_subcommand run" -l debug -d 'Log one line per socket to stderr (KEEPALIVE_DEBUG=1)'
complete -c keepalive -n "__fish_keepalive_using_subcommand run" -l enforce -d 'Enforce the settings in the kernel instead (cgroup BPF): reaches static and Go binaries. Needs root'
complete -c keepalive -n "__fish_keepalive_using_subcommand run" -l force -d 'With --enforce: replace keepalive settings the program makes itself'
complete -c keepalive -n "__fish_keepalive_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c keepalive -n "__fish_keepalive_using_subcommand check" -l connect -d 'Connect the socket to HOST:PORT first (5 s timeout)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand check" -l ipv6 -d 'Use an IPv6 socket (without --connect)'
complete -c keepalive -n "__fish_keepalive_using_subcommand check" -l json -d 'Print one JSON line {"type":"socket","data":{...}} instead'
complete -c keepalive -n "__fish_keepalive_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and not __fish_seen_subcommand_from show set persist help" -l netns -d 'A named network namespace (/run/netns/NAME, as `ip netns` makes) or the path of a namespace file (/proc/PID/ns/net, a bind mount)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and not __fish_seen_subcommand_from show set persist help" -l pid -d 'The network namespace of process PID (a container\'s process)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and not __fish_seen_subcommand_from show set persist help" -l json -d 'Print JSON lines instead of text'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and not __fish_seen_subcommand_from show set persist help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and not __fish_seen_subcommand_from show set persist help" -f -a "show" -d 'Show the values and what they mean (the default)'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and not __fish_seen_subcommand_from show set persist help" -f -a "set" -d 'Set the values: validated first, only changes written, all or nothing'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and not __fish_seen_subcommand_from show set persist help" -f -a "persist" -d 'Write the values to a sysctl.d drop-in only (images built offline)'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and not __fish_seen_subcommand_from show set persist help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from show" -l netns -d 'A named network namespace (/run/netns/NAME, as `ip netns` makes) or the path of a namespace file (/proc/PID/ns/net, a bind mount)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from show" -l pid -d 'The network namespace of process PID (a container\'s process)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from show" -l json -d 'Print JSON lines instead of text'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from set" -l idle -d 'net.ipv4.tcp_keepalive_time: idle time before the first probe, 1s..32767s' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from set" -l interval -d 'net.ipv4.tcp_keepalive_intvl: time between probes, 1s..32767s' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from set" -l count -d 'net.ipv4.tcp_keepalive_probes: unanswered probes before the drop, 1..127' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from set" -l root -d 'Read and write the configuration files under DIR instead of /' -r -F
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from set" -l netns -d 'A named network namespace (/run/netns/NAME, as `ip netns` makes) or the path of a namespace file (/proc/PID/ns/net, a bind mount)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from set" -l pid -d 'The network namespace of process PID (a container\'s process)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from set" -l persist -d 'Also write them to /etc/sysctl.d/90-keepalive.conf, read at boot'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from set" -l json -d 'Print JSON lines instead of text'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from persist" -l idle -d 'net.ipv4.tcp_keepalive_time: idle time before the first probe, 1s..32767s' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from persist" -l interval -d 'net.ipv4.tcp_keepalive_intvl: time between probes, 1s..32767s' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from persist" -l count -d 'net.ipv4.tcp_keepalive_probes: unanswered probes before the drop, 1..127' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from persist" -l root -d 'Read and write the configuration files under DIR instead of /' -r -F
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from persist" -l netns -d 'A named network namespace (/run/netns/NAME, as `ip netns` makes) or the path of a namespace file (/proc/PID/ns/net, a bind mount)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from persist" -l pid -d 'The network namespace of process PID (a container\'s process)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from persist" -l json -d 'Print JSON lines instead of text'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from persist" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show the values and what they mean (the default)'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from help" -f -a "set" -d 'Set the values: validated first, only changes written, all or nothing'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from help" -f -a "persist" -d 'Write the values to a sysctl.d drop-in only (images built offline)'
complete -c keepalive -n "__fish_keepalive_using_subcommand sysctl; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c keepalive -n "__fish_keepalive_using_subcommand install" -l root -d 'Act under DIR instead of / (an image being built); the entry written is still /usr/local/lib/keepalive/libkeepalive.so' -r -F
complete -c keepalive -n "__fish_keepalive_using_subcommand install" -l library -d 'The library to install (default: the one `keepalive run` uses)' -r -F
complete -c keepalive -n "__fish_keepalive_using_subcommand install" -l global -d 'Also add the library to /etc/ld.so.preload (every program)'
complete -c keepalive -n "__fish_keepalive_using_subcommand install" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c keepalive -n "__fish_keepalive_using_subcommand uninstall" -l root -d 'Act under DIR instead of / (an image being built)' -r -F
complete -c keepalive -n "__fish_keepalive_using_subcommand uninstall" -l global -d 'Remove the library from /etc/ld.so.preload'
complete -c keepalive -n "__fish_keepalive_using_subcommand uninstall" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c keepalive -n "__fish_keepalive_using_subcommand ls" -l pid -d 'Only the sockets of process PID, with their socket options' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand ls" -l netns -d 'List inside this network namespace (/run/netns/NAME or a path)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand ls" -l state -d 'Which sockets to list' -r -f -a "established\t'Established connections (the default)'
listen\t'Listening sockets'
all\t'Every TCP socket'"
complete -c keepalive -n "__fish_keepalive_using_subcommand ls" -l port -d 'Only sockets with PORT as their local or remote port' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand ls" -l sport -d 'Only sockets whose local (source) port is PORT' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand ls" -l dport -d 'Only sockets whose remote (destination) port is PORT' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand ls" -l without-keepalive -d 'Only connections whose keepalive is known to be off'
complete -c keepalive -n "__fish_keepalive_using_subcommand ls" -l json -d 'Print JSON lines ({"type":"connection","data":{...}}) instead'
complete -c keepalive -n "__fish_keepalive_using_subcommand ls" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c keepalive -n "__fish_keepalive_using_subcommand attach" -l pid -d 'The process' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand attach" -l idle -d 'Idle time before the first probe (TCP_KEEPIDLE): 1s..32767s' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand attach" -l interval -d 'Time between probes (TCP_KEEPINTVL): 1s..32767s' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand attach" -l count -d 'Unanswered probes before the connection is dropped (TCP_KEEPCNT): 1..127' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand attach" -l user-timeout -d 'Give up on unacknowledged data after this long (TCP_USER_TIMEOUT)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand attach" -l dry-run -d 'Show what would change; change nothing'
complete -c keepalive -n "__fish_keepalive_using_subcommand attach" -l json -d 'Print JSON lines instead of text'
complete -c keepalive -n "__fish_keepalive_using_subcommand attach" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l cgroup -d 'The cgroup v2 directory: absolute, or relative to the cgroup2 mount (system.slice/app.service). Not the root cgroup: that is --all' -r -F
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l unit -d 'The systemd unit whose cgroup to enforce on: a service or a slice (app.service, system.slice, kubepods.slice)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l idle -d 'Idle time before the first probe (TCP_KEEPIDLE): 1s..32767s' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l interval -d 'Time between probes (TCP_KEEPINTVL): 1s..32767s' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l count -d 'Unanswered probes before the connection is dropped (TCP_KEEPCNT): 1..127' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l user-timeout -d 'Give up on unacknowledged data after this long (TCP_USER_TIMEOUT)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l max-idle -d 'Keepalive always on, idle and interval at most DURATION, whatever the program sets (shorter values stand): 1s..32767s' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l root -d 'Write and remove the systemd files under DIR instead of / (an image, a test); `systemctl daemon-reload` is then not run' -r -F
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l all -d 'The root cgroup: every process on this host (every pod of a Kubernetes node). Only with this flag, never through a path'
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l force -d 'Replace keepalive settings a program makes itself, and hold them against its later setsockopt (by default a connection whose program switched keepalive on is left alone)'
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l persist -d 'With --unit: enforce again at every start of the unit (restarts, reboots), through a systemd drop-in'
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l status -d 'List where enforcement is attached, what for, and with which values'
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l remove -d 'Detach, remove the pins, and with --unit the drop-in'
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l existing -d 'Also apply the settings now to the connections that already exist in the cgroup and below it (established and listening)'
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -l json -d 'Print JSON lines instead of text'
complete -c keepalive -n "__fish_keepalive_using_subcommand enforce" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c keepalive -n "__fish_keepalive_using_subcommand doctor" -l netns -d 'Diagnose inside this network namespace (/run/netns/NAME or a path)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand doctor" -l idle-timeout -d 'The idle timeout of what is in front of this host (a load balancer, a NAT, a firewall): 350s, 4m, 1h30m' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand doctor" -l behind -d 'A load balancer or NAT by name, whose idle timeout is known: aws-nlb, aws-nat, azure-lb, gcp-nat, ipvs, ... (see the README)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand doctor" -l json -d 'Print one JSON line per finding ({"type":"finding",...}), then a `doctor_summary`'
complete -c keepalive -n "__fish_keepalive_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c keepalive -n "__fish_keepalive_using_subcommand metrics" -l listen -d 'Serve the metrics over HTTP at ADDR (/metrics) instead of printing them once' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand metrics" -l idle-timeout -d 'The idle timeout of what is in front of this host (a load balancer, a NAT, a firewall): 350s, 4m, 1h30m' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand metrics" -l behind -d 'A load balancer or NAT by name, whose idle timeout is known: aws-nlb, aws-nat, azure-lb, gcp-nat, ipvs, ... (see the README)' -r
complete -c keepalive -n "__fish_keepalive_using_subcommand metrics" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c keepalive -n "__fish_keepalive_using_subcommand status" -l root -d 'Read /etc/ld.so.preload and the sysctl.d files under DIR (an image) instead of /' -r -F
complete -c keepalive -n "__fish_keepalive_using_subcommand status" -l json -d 'Print one JSON line ({"type":"host_status",...}) instead'
complete -c keepalive -n "__fish_keepalive_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and not __fish_seen_subcommand_from run check sysctl install uninstall ls attach enforce doctor metrics status help" -f -a "run" -d 'Run a program with TCP keepalive on its sockets (LD_PRELOAD)'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and not __fish_seen_subcommand_from run check sysctl install uninstall ls attach enforce doctor metrics status help" -f -a "check" -d 'Create a TCP socket and print its keepalive options (the HOWTO\'s test program)'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and not __fish_seen_subcommand_from run check sysctl install uninstall ls attach enforce doctor metrics status help" -f -a "sysctl" -d 'Show or set the kernel defaults, net.ipv4.tcp_keepalive_* (HOWTO 3.1, 3.2)'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and not __fish_seen_subcommand_from run check sysctl install uninstall ls attach enforce doctor metrics status help" -f -a "install" -d 'Install libkeepalive.so; with --global, preload it into every program'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and not __fish_seen_subcommand_from run check sysctl install uninstall ls attach enforce doctor metrics status help" -f -a "uninstall" -d 'Remove libkeepalive.so from /etc/ld.so.preload (--global)'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and not __fish_seen_subcommand_from run check sysctl install uninstall ls attach enforce doctor metrics status help" -f -a "ls" -d 'List TCP connections and their keepalive state (sock_diag)'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and not __fish_seen_subcommand_from run check sysctl install uninstall ls attach enforce doctor metrics status help" -f -a "attach" -d 'Switch keepalive on in a running process (pidfd_getfd)'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and not __fish_seen_subcommand_from run check sysctl install uninstall ls attach enforce doctor metrics status help" -f -a "enforce" -d 'Enforce keepalive in the kernel for every TCP connection of a cgroup'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and not __fish_seen_subcommand_from run check sysctl install uninstall ls attach enforce doctor metrics status help" -f -a "doctor" -d 'Find what will cut idle connections on this host, and how to fix it'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and not __fish_seen_subcommand_from run check sysctl install uninstall ls attach enforce doctor metrics status help" -f -a "metrics" -d 'Prometheus metrics of keepalive on this host'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and not __fish_seen_subcommand_from run check sysctl install uninstall ls attach enforce doctor metrics status help" -f -a "status" -d 'Show everything keepalive has put in effect on this host'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and not __fish_seen_subcommand_from run check sysctl install uninstall ls attach enforce doctor metrics status help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and __fish_seen_subcommand_from sysctl" -f -a "show" -d 'Show the values and what they mean (the default)'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and __fish_seen_subcommand_from sysctl" -f -a "set" -d 'Set the values: validated first, only changes written, all or nothing'
complete -c keepalive -n "__fish_keepalive_using_subcommand help; and __fish_seen_subcommand_from sysctl" -f -a "persist" -d 'Write the values to a sysctl.d drop-in only (images built offline)'
