# Shell test helpers, sourced by the tool tests. They need $work (a scratch
# directory) and count into $passed and $failed.
passed=0
failed=0

check() {  # check NAME COMMAND...: the command must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name"; cat "$work/out" "$work/err"
  fi
}

expect_error() {  # expect_error NAME PATTERN COMMAND...: must fail, stderr matching
  local name=$1 pattern=$2; shift 2
  if "$@" >"$work/out" 2>"$work/err"; then
    failed=$((failed + 1)); echo "FAIL: $name succeeded"
  elif grep -q -- "$pattern" "$work/err"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: $name: stderr lacks '$pattern'"; cat "$work/err"
  fi
}
