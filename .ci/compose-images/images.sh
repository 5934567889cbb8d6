# Local stand-ins for the images Compose/ names, for a Docker host that cannot pull them (no
# registry reachable, as on the CI machines). Sourced by .ci/compose-run. Each stand-in is built
# only when the image is absent and a pull fails, and is tagged with the very name and tag the
# Compose files use, so compose.yaml and Compose/Dockerfile run unchanged:
#
#   debian:bookworm-slim     debootstrap --variant=minbase bookworm, imported
#   swift:6.3-bookworm       the host's Swift toolchain (/opt/swift or the one on PATH) in /usr and its
#                            package copies (/opt/swift-packages, read in place of github.com)
#   postgres:15-bookworm     Debian's PostgreSQL 15 behind the official image's entrypoint contract
#   redis:7-bookworm         Debian's Redis 7 behind the official image's entrypoint contract
#   nginx:1.28               nginx from Debian's unstable suite (upstream `resolve` needs 1.27.3;
#                            bookworm has 1.22) behind the official image's template rendering
#   prom/prometheus:v3.5.0   Debian's prometheus behind the official image's entrypoint
#
# The stand-ins follow the documented contract of the official images (environment variables,
# data directories, entrypoints), not their every detail; see .ci/compose-images/*/.

compose_images_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
debian_mirror=${LEASEHOLD_DEBIAN_MIRROR:-http://deb.debian.org/debian}

image_present() { docker image inspect "$1" >/dev/null 2>&1; }

# Pull $1 unless present; 0 when it is there afterwards. A host without a registry answers at once
# or times out; either way the caller builds the stand-in.
image_pull() {
    image_present "$1" && return 0
    echo "    pulling $1"
    timeout "${LEASEHOLD_PULL_TIMEOUT:-30}" docker pull -q "$1" >/dev/null 2>&1 && image_present "$1"
}

stand_in_debian() {
    local image=debian:bookworm-slim root
    image_pull "$image" && return 0
    echo "==> stand-in $image: debootstrap --variant=minbase bookworm ($debian_mirror)"
    command -v debootstrap >/dev/null || apt_install debootstrap
    root=$(mktemp -d /tmp/leasehold-debian-root.XXXXXX)
    debootstrap --variant=minbase bookworm "$root" "$debian_mirror" >"$root.log" 2>&1 \
        || { tail -n 20 "$root.log" >&2; rm -rf "$root" "$root.log"; return 1; }
    # What the slim image leaves out: documentation, man pages, apt's package lists.
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/*/[!c]* \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
    tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$image" >/dev/null
    rm -rf "$root" "$root.log"
}

# The Swift builder: Debian 12 with the toolchain's run-time packages (those the official
# swift:6.3-bookworm installs) and this host's toolchain and package copies, bind-mounted into a
# container and copied, then committed.
stand_in_swift() {
    local image=swift:6.3-bookworm toolchain packages container
    image_pull "$image" && return 0
    toolchain=${LEASEHOLD_SWIFT_TOOLCHAIN:-}
    if [ -z "$toolchain" ]; then
        # <toolchain>/usr/bin/swift
        toolchain=$(dirname "$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")")
    fi
    packages=${LEASEHOLD_SWIFT_PACKAGES:-/opt/swift-packages}
    [ -x "$toolchain/usr/bin/swift" ] || { echo "error: no Swift toolchain at $toolchain (set LEASEHOLD_SWIFT_TOOLCHAIN)" >&2; return 1; }
    echo "==> stand-in $image: toolchain $toolchain ($("$toolchain/usr/bin/swift" --version 2>/dev/null | head -n 1)), packages $packages"
    local mounts=(-v "$toolchain:/mnt/toolchain:ro")
    [ -d "$packages" ] && mounts+=(-v "$packages:/mnt/swift-packages:ro")
    container=leasehold-swift-stand-in-$$
    docker rm -f "$container" >/dev/null 2>&1 || true
    docker run --name "$container" "${mounts[@]}" debian:bookworm-slim bash -euc '
        export DEBIAN_FRONTEND=noninteractive
        apt-get -q update >/dev/null
        apt-get -q install -y --no-install-recommends binutils git gnupg2 libc6-dev libcurl4-openssl-dev \
            libedit2 libgcc-12-dev libpython3-dev libsqlite3-0 libstdc++-12-dev libxml2-dev libncurses-dev \
            libz3-dev pkg-config tzdata zip unzip zlib1g-dev ca-certificates >/dev/null
        rm -rf /var/lib/apt/lists/*
        # The toolchain in /usr, as the official image has it; debuggers and the IDE service left out.
        cd /mnt/toolchain/usr
        tar -c --exclude="./lib/liblldb*" --exclude="./lib/libsourcekitdInProc*" --exclude="./bin/lldb*" \
            --exclude="./bin/sourcekit-lsp" --exclude="./lib/python3*" . | tar -x -C /usr
        if [ -d /mnt/swift-packages ]; then
            mkdir -p /opt/swift-packages
            cp -a /mnt/swift-packages/. /opt/swift-packages/
            git config --system url./opt/swift-packages/.insteadOf https://github.com/
            git config --system --add url./opt/swift-packages/.insteadOf git@github.com:
        fi
        swift --version' || { docker rm -f "$container" >/dev/null 2>&1; return 1; }
    docker commit --change 'CMD ["bash"]' "$container" "$image" >/dev/null
    docker rm -f "$container" >/dev/null
}

# An image built from .ci/compose-images/<dir>/Dockerfile (FROM debian:bookworm-slim).
stand_in_built() {
    local image=$1 dir=$2
    image_pull "$image" && return 0
    echo "==> stand-in $image: .ci/compose-images/$dir"
    DOCKER_BUILDKIT=1 docker build -q -t "$image" "$compose_images_dir/$dir" >/dev/null
}

compose_stand_ins() {
    stand_in_debian
    stand_in_built postgres:15-bookworm postgres
    stand_in_built redis:7-bookworm redis
    stand_in_built nginx:1.28 nginx
    stand_in_built prom/prometheus:v3.5.0 prometheus
}
