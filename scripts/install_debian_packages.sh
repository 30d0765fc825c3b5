#!/usr/bin/env bash
# Install the Debian packages given as arguments that are not installed yet.
# Usage: scripts/install_debian_packages.sh [--no-install-recommends] PACKAGE...
# Installing needs root and apt-get; without them the script names the missing packages and fails.
set -euo pipefail

apt_options=()
if [ "${1:-}" = "--no-install-recommends" ]; then
    apt_options+=("--no-install-recommends")
    shift
fi

missing=()
for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "缺少 Debian 软件包：${missing[*]}。请以 root 身份运行：" >&2
    echo "  apt-get update && apt-get install -y ${apt_options[*]} ${missing[*]}" >&2
    exit 1
fi

echo "安装 Debian 软件包：${missing[*]}"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${apt_options[@]}" "${missing[@]}"
