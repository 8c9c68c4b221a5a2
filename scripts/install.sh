#!/bin/sh
# Installs the systemd units of reconfig-wg and port-knock for the commands as they are
# installed here, the /etc/default files for their options, the man pages reconfig-wg(8) and
# port-knock(8) and the bash completion; --uninstall takes them away.
# Says what it does, line by line. Run it from the installed package:
#   sudo "$(npm root -g)/reconfig-wg/scripts/install.sh"
#   sudo "$(npm root -g)/reconfig-wg/scripts/install.sh" --uninstall
set -eu

program=install.sh
usage() {
	cat <<EOF
Usage: $0 [--uninstall] [--bin-dir DIR] [--root DIR]

Installs reconfig-wg@.service, port-knock@.service and reconfig-wg-mesh@.service into /etc/systemd/system, with
ExecStart pointing at the installed commands, /etc/default/reconfig-wg and
/etc/default/port-knock (options; an existing file is kept), the man pages into
/usr/local/share/man/man8 and the bash completion into
/usr/local/share/bash-completion/completions. Then:
  systemctl enable --now reconfig-wg@wg0
  systemctl enable --now port-knock@wg0     # optional

  --uninstall     stop and disable every instance, remove the units, and remove the
                  /etc/default files unless they were changed
  --bin-dir DIR   where reconfig-wg and port-knock are (default: the bin directory of the npm
                  prefix this package is installed in, else the PATH)
  --root DIR      install below DIR instead of / (a staging tree; systemctl is not run)
EOF
}
fail() {
	echo "$program: $1" >&2
	exit "${2:-1}"
}

uninstall=0 bin_dir= root=/
while [ $# -gt 0 ]; do
	case "$1" in
	--uninstall) uninstall=1 ;;
	--bin-dir | --root)
		[ $# -ge 2 ] && [ -n "$2" ] || fail "$1 needs a directory. See --help." 2
		if [ "$1" = --root ]; then root=$2; else bin_dir=$2; fi
		shift
		;;
	--bin-dir=* | --root=*) fail "write ${1%%=*} DIR with a space, not '='. See --help." 2 ;;
	-h | --help)
		usage
		exit 0
		;;
	*) fail "unknown argument '$1'. See --help." 2 ;;
	esac
	shift
done

here=$(cd "$(dirname "$0")/.." && pwd)
units="$here/init.d/systemd"
[ -f "$units/reconfig-wg@.service" ] || fail "cannot find the unit files in $units; run the install.sh of an installed package." 2
target=${root%/}
unit_dir=$target/etc/systemd/system
default_dir=$target/etc/default
man_dir=$target/usr/local/share/man/man8
completion_dir=$target/usr/local/share/bash-completion/completions
marker='# installed by reconfig-wg scripts/install.sh'

if [ "$root" = / ] && [ "$(id -u)" -ne 0 ]; then
	fail "writing to /etc needs root: sudo $0 $*" 2
fi
# systemctl only for the running system, and only where systemd runs it
live=0
if [ "$root" = / ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then live=1; fi

# installed shipped why-kept: removes an installed file that is still the one this package ships
remove_unchanged() {
	if [ ! -f "$1" ]; then
		echo "$1: not there"
	elif cmp -s "$1" "$2"; then
		rm -f "$1"
		echo "removed $1"
	else
		echo "kept $1: $3"
	fi
}

if [ "$uninstall" -eq 1 ]; then
	for name in port-knock reconfig-wg reconfig-wg-mesh; do
		unit="$unit_dir/$name@.service"
		if [ "$live" -eq 1 ]; then
			for instance in $(systemctl list-units --all --plain --no-legend "$name@*.service" 2>/dev/null | awk '{print $1}'); do
				systemctl disable --now "$instance" >/dev/null 2>&1 || true
				echo "stopped and disabled $instance"
			done
		fi
		for link in "$unit_dir"/*.wants/"$name"@*.service; do
			[ -L "$link" ] || continue
			rm -f "$link"
			echo "removed $link"
		done
		if [ ! -f "$unit" ]; then
			echo "$unit: not there"
		elif grep -qxF "$marker" "$unit"; then
			rm -f "$unit"
			echo "removed $unit"
		else
			echo "kept $unit: it was not installed by this script"
		fi
		remove_unchanged "$default_dir/$name" "$units/default/$name" "it holds your changes"
	done
	remove_unchanged "$man_dir/reconfig-wg.8" "$here/man/reconfig-wg.8" "it is not this package's"
	remove_unchanged "$man_dir/port-knock.8" "$here/man/port-knock.8" "it is not this package's"
	for command in reconfig-wg port-knock; do
		remove_unchanged "$completion_dir/$command" "$here/completions/reconfig-wg" "it is not this package's"
	done
	if [ "$live" -eq 1 ]; then
		systemctl daemon-reload
		echo "systemctl daemon-reload"
	fi
	exit 0
fi

# Where the commands are: the npm prefix this package sits in (PREFIX/lib/node_modules/
# reconfig-wg → PREFIX/bin), else whatever the PATH finds.
if [ -z "$bin_dir" ]; then
	case "$here" in
	*/lib/node_modules/reconfig-wg) bin_dir=${here%/lib/node_modules/reconfig-wg}/bin ;;
	esac
	if [ -z "$bin_dir" ] || [ ! -x "$bin_dir/reconfig-wg" ]; then
		found=$(command -v reconfig-wg 2>/dev/null || true)
		[ -n "$found" ] || fail "reconfig-wg is not installed: npm install -g ./reconfig-wg-*.tgz first, or pass --bin-dir." 2
		bin_dir=$(dirname "$found")
	fi
fi
for command in reconfig-wg port-knock; do
	[ -x "$bin_dir/$command" ] || fail "$bin_dir/$command is not an executable; pass --bin-dir with the directory holding reconfig-wg and port-knock." 2
done
case "$bin_dir" in
/*) ;;
*) bin_dir=$(cd "$bin_dir" && pwd) ;;
esac

mkdir -p "$unit_dir" "$default_dir"
for name in reconfig-wg port-knock reconfig-wg-mesh; do
	unit="$unit_dir/$name@.service"
	# the mesh client is the reconfig-wg command's `mesh` subcommand
	command=${name%-mesh}
	if [ -f "$unit" ] && ! grep -qxF "$marker" "$unit"; then
		fail "$unit exists and was not installed by this script; move it aside first." 1
	fi
	# a temporary file created new beside the unit (mktemp: O_EXCL, mode 0600), renamed over it
	temp=$(mktemp "$unit.XXXXXX") || fail "cannot create a temporary file in $unit_dir." 1
	{
		echo "$marker"
		sed "s|^ExecStart=/usr/local/bin/$command |ExecStart=$bin_dir/$command |" "$units/$name@.service"
	} >"$temp"
	grep -q "^ExecStart=$bin_dir/$command " "$temp" || {
		rm -f "$temp"
		fail "could not set ExecStart in $unit (the template changed?)." 1
	}
	chmod 0644 "$temp"
	mv -f "$temp" "$unit"
	echo "installed $unit (ExecStart=$bin_dir/$command)"
	default="$default_dir/$name"
	if [ -f "$default" ]; then
		echo "kept $default (already there)"
	else
		temp=$(mktemp "$default.XXXXXX") || fail "cannot create a temporary file in $default_dir." 1
		cat "$units/default/$name" >"$temp"
		chmod 0644 "$temp"
		mv -f "$temp" "$default"
		echo "installed $default (options: edit it, then restart the service)"
	fi
done
# source → where, written to a temporary name and renamed into place
install_file() {
	mkdir -p "$(dirname "$2")"
	cp "$1" "$2.tmp.$$"
	chmod 0644 "$2.tmp.$$"
	mv -f "$2.tmp.$$" "$2"
	echo "installed $2"
}
install_file "$here/man/reconfig-wg.8" "$man_dir/reconfig-wg.8"
install_file "$here/man/port-knock.8" "$man_dir/port-knock.8"
# bash-completion loads a command's completion from a file named after it: one script, both names
install_file "$here/completions/reconfig-wg" "$completion_dir/reconfig-wg"
install_file "$here/completions/reconfig-wg" "$completion_dir/port-knock"
if [ "$live" -eq 1 ]; then
	systemctl daemon-reload
	echo "systemctl daemon-reload"
fi
echo "next: systemctl enable --now reconfig-wg@wg0   (and port-knock@wg0 for knocks)"
