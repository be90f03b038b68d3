# Sourced by scripts/run and scripts/test (after _venv.sh): install a Debian package when its command is missing.
# need_debian_package COMMAND PACKAGE WHY
need_debian_package() {
    local command="$1" package="$2" why="$3"
    if PATH="$PATH:/usr/sbin:/sbin" command -v "$command" >/dev/null; then
        return
    fi
    echo "Installing Debian's $package ($why)..." >&2
    local sudo log
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    log="$VENV/apt-$package.log"
    if ! { $sudo apt-get install -y -q "$package" || { $sudo apt-get update -q && $sudo apt-get install -y -q "$package"; }; } \
        >"$log" 2>&1; then
        tail -20 "$log" >&2
        echo "Installing $package failed; full log in $log" >&2
        exit 1
    fi
}
