# Sourced by the test scripts: test_venv BUILD_DIR makes (once) the Python
# virtual env of the tests' independent checks in BUILD_DIR/test-venv, with
# tests/integration/requirements.txt installed, and sets `venv` to it.
test_venv() {
  venv="$1/test-venv"
  if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$1"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$root/tests/integration/requirements.txt"
}
