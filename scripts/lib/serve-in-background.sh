# Sourced by the soak and benchmark scripts: serve_in_background OUT ARGS...
# starts scripts/serve.sh ARGS... in the background (its output in
# OUT/serve.out and OUT/serve.err) and waits until it serves; it sets
# serve_pid and the gateway's address. Exits 1, with serve.sh's errors, when
# it stops first. The caller traps EXIT to stop it.
serve_in_background() {
  local out=$1
  shift
  "$root/scripts/serve.sh" "$@" >"$out/serve.out" 2>"$out/serve.err" &
  serve_pid=$!
  for _ in $(seq 1200); do
    grep -q "Ctrl-C" "$out/serve.out" 2>/dev/null && break
    kill -0 "$serve_pid" 2>/dev/null || { cat "$out/serve.err" >&2; exit 1; }
    sleep 0.5
  done
  address=$(head -1 "$out/serve.out")
}
