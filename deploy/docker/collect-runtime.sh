#!/usr/bin/env bash
# collect-runtime.sh BIN_DIR DEST: copies the service binaries of a build
# into DEST/bin and every shared library they load (as ldd resolves it on
# this machine) into DEST/lib, but glibc's own, which the image's base has
# and which must match its loader. Run where the binaries were built: in the
# image's build stage, or on the host for an image of prebuilt binaries.
set -euo pipefail
bin_dir=$1
dest=$2
programs=(moe-router moe-expert-worker moe-gateway moe-cli moe-admin moe-bench moe-plan)
mkdir -p "$dest/bin" "$dest/lib"
for program in "${programs[@]}"; do
  [ -x "$bin_dir/$program" ] || { echo "collect-runtime: no $bin_dir/$program" >&2; exit 1; }
  cp -L "$bin_dir/$program" "$dest/bin/"
done
if ldd "$dest"/bin/* | grep "not found" >&2; then
  echo "collect-runtime: a library above is missing" >&2
  exit 1
fi
ldd "$dest"/bin/* | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  while read -r library; do
    case $(basename "$library") in
      libc.so.* | libm.so.* | libdl.so.* | libpthread.so.* | librt.so.* | \
        libresolv.so.* | ld-linux*) ;;
      *) cp -L "$library" "$dest/lib/" ;;
    esac
  done
