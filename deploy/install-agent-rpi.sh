#!/usr/bin/env bash
# Installs the shopfloor-spc edge agent on Raspberry Pi OS (Bookworm, arm64) or any Debian-like
# system with systemd, as one `spc-agent@<instance>` service. Idempotent: run it again to upgrade
# the package or to add another instance; existing configs and keys are never overwritten.
set -euo pipefail

PREFIX=/opt/spc-agent
CONF_DIR=/etc/spc-agent
STATE_DIR=/var/lib/spc-agent
USER_NAME=spc-agent
UNIT_DIR=/etc/systemd/system

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$SCRIPT_DIR")

usage() {
  cat <<EOF
Usage: sudo $(basename "$0") [options]

Install the shopfloor-spc edge agent (pip extra [edge] only) into a virtual environment in
$PREFIX, create the system user $USER_NAME, the config directory $CONF_DIR and enable the
systemd service spc-agent@<instance>.

Options:
  --instance NAME     service instance and config name (default: line1): reads
                      $CONF_DIR/NAME.yaml and $CONF_DIR/NAME.env
  --source PATH       a shopfloor-spc checkout (directory) or wheel (.whl) to install from
                      (default: the checkout that contains this script: $REPO_DIR)
  --config FILE       agent YAML to install as $CONF_DIR/NAME.yaml if that does not exist
                      yet (default: a copy of edge_agent/examples/machining-line.yaml to edit;
                      the service is then left disabled until you have edited it)
  --server-url URL    written as SPC_SERVER_URL into a new $CONF_DIR/NAME.env
  --no-enable         install only; do not enable or (re)start the service
  --skip-check        do not run 'spc agent check-config' before enabling
  --dry-run           print what would be done, change nothing
  -h, --help          show this help

The agent's API key is taken from the SPC_AGENT_KEY environment variable when a new
$CONF_DIR/NAME.env is written (mode 0600), e.g.:
  sudo SPC_AGENT_KEY=spc_... $(basename "$0") --instance line1 --config line1.yaml \\
       --server-url https://spc.example.com
EOF
}

INSTANCE=line1
SOURCE=$REPO_DIR
CONFIG=""
SERVER_URL=""
ENABLE=1
CHECK=1
DRY_RUN=0

while [ $# -gt 0 ]; do
  case "$1" in
    --instance) INSTANCE=${2:?--instance needs a name}; shift 2 ;;
    --source) SOURCE=${2:?--source needs a path}; shift 2 ;;
    --config) CONFIG=${2:?--config needs a file}; shift 2 ;;
    --server-url) SERVER_URL=${2:?--server-url needs a URL}; shift 2 ;;
    --no-enable) ENABLE=0; shift ;;
    --skip-check) CHECK=0; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install-agent-rpi: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! [[ $INSTANCE =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]]; then
  echo "install-agent-rpi: instance name '$INSTANCE': letters, digits, '.', '_' and '-' only" >&2
  exit 2
fi

say() { echo "install-agent-rpi: $*"; }
run() {
  if [ $DRY_RUN = 1 ]; then
    echo "+ $*"
  else
    "$@"
  fi
}

if [ -d "$SOURCE" ]; then
  [ -f "$SOURCE/pyproject.toml" ] || { say "$SOURCE is not a shopfloor-spc checkout" >&2; exit 2; }
  SOURCE=$(cd "$SOURCE" && pwd)
elif [ -f "$SOURCE" ] && [[ $SOURCE == *.whl ]]; then
  SOURCE=$(cd "$(dirname "$SOURCE")" && pwd)/$(basename "$SOURCE")
else
  say "--source must be a checkout directory or a .whl file: $SOURCE" >&2
  exit 2
fi
UNIT_SRC=$SCRIPT_DIR/systemd/spc-agent@.service
[ -f "$UNIT_SRC" ] || { say "missing $UNIT_SRC" >&2; exit 2; }
if [ -n "$CONFIG" ] && [ ! -f "$CONFIG" ]; then
  say "no such config file: $CONFIG" >&2
  exit 2
fi

if [ $DRY_RUN = 0 ] && [ "$(id -u)" != 0 ]; then
  say "run as root (sudo), or use --dry-run" >&2
  exit 1
fi

arch=$(uname -m)
if [ "$arch" != aarch64 ]; then
  say "note: this machine is $arch, not aarch64 (64-bit Raspberry Pi OS); continuing"
fi

# 1. Python venv support (Raspberry Pi OS Lite lacks python3-venv).
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  say "installing python3-venv"
  run apt-get update -qq
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip
fi

# 2. The system user (in dialout for Modbus RTU on USB RS-485 adapters).
if ! id -u "$USER_NAME" >/dev/null 2>&1; then
  say "creating system user $USER_NAME"
  run useradd --system --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
    "$USER_NAME"
fi
if getent group dialout >/dev/null && ! id -nG "$USER_NAME" 2>/dev/null | grep -qw dialout; then
  run usermod -aG dialout "$USER_NAME"
fi

# 3. The virtual environment and the package, [edge] extra only (no server stack).
if [ ! -x "$PREFIX/bin/python" ]; then
  say "creating virtual environment $PREFIX"
  run python3 -m venv "$PREFIX"
fi
say "installing shopfloor-spc[edge] from $SOURCE"
run "$PREFIX/bin/pip" install --quiet --upgrade pip
run "$PREFIX/bin/pip" install --quiet --upgrade "${SOURCE}[edge]"

# 4. Config and secrets: created once, never overwritten.
run install -d -m 0750 -o root -g "$USER_NAME" "$CONF_DIR"
run install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$STATE_DIR"
conf=$CONF_DIR/$INSTANCE.yaml
envfile=$CONF_DIR/$INSTANCE.env
edited=1
if [ ! -f "$conf" ]; then
  if [ -n "$CONFIG" ]; then
    say "installing $CONFIG as $conf"
    run install -m 0640 -o root -g "$USER_NAME" "$CONFIG" "$conf"
  else
    example=$REPO_DIR/edge_agent/examples/machining-line.yaml
    if [ -f "$example" ]; then
      say "no config given: installing the example as $conf; edit it, then run this again"
      run install -m 0640 -o root -g "$USER_NAME" "$example" "$conf"
    else
      say "no config given and no example found: write $conf, then run this again"
    fi
    edited=0
  fi
else
  say "keeping existing $conf"
fi
if [ ! -f "$envfile" ]; then
  say "writing $envfile (mode 0600)"
  if [ $DRY_RUN = 0 ]; then
    umask 077
    {
      echo "# secrets for spc-agent@$INSTANCE; read by systemd (EnvironmentFile)"
      echo "SPC_AGENT_KEY=${SPC_AGENT_KEY:-}"
      if [ -n "$SERVER_URL" ]; then echo "SPC_SERVER_URL=$SERVER_URL"; fi
    } > "$envfile"
    chown root:root "$envfile"
    chmod 0600 "$envfile"
  else
    echo "+ write $envfile: SPC_AGENT_KEY=<from environment>${SERVER_URL:+ SPC_SERVER_URL=$SERVER_URL}"
  fi
  if [ -z "${SPC_AGENT_KEY:-}" ]; then
    say "SPC_AGENT_KEY is empty in $envfile: create a key with 'spc keys create --role agent'"
  fi
else
  say "keeping existing $envfile"
fi
if [ -f "$conf" ] && ! grep -Eq "^[[:space:]]*path:[[:space:]]*$STATE_DIR/$INSTANCE/" "$conf"; then
  say "note: put buffer.path under $STATE_DIR/$INSTANCE/ in $conf (the unit's state directory)"
fi

# 5. The systemd unit (replaced only when it changed).
if ! cmp -s "$UNIT_SRC" "$UNIT_DIR/spc-agent@.service"; then
  say "installing $UNIT_DIR/spc-agent@.service"
  run install -m 0644 "$UNIT_SRC" "$UNIT_DIR/spc-agent@.service"
  run systemctl daemon-reload
fi

if [ $ENABLE = 0 ] || [ $edited = 0 ]; then
  say "done; when $conf is ready: systemctl enable --now spc-agent@$INSTANCE"
  exit 0
fi

# 6. Check the config (exit 2 = invalid: stop here; 1 = a source unreachable: warn only).
if [ $CHECK = 1 ]; then
  say "checking $conf"
  status=0
  if [ $DRY_RUN = 0 ]; then
    (set -a; . "$envfile"; set +a
     runuser -u "$USER_NAME" -- "$PREFIX/bin/spc" agent check-config --timeout 5 "$conf") \
      || status=$?
  else
    echo "+ runuser -u $USER_NAME -- $PREFIX/bin/spc agent check-config --timeout 5 $conf"
  fi
  if [ $status = 2 ]; then
    say "$conf is invalid; fix it and run this again" >&2
    exit 2
  elif [ $status != 0 ]; then
    say "warning: a source did not answer; the agent will keep retrying once started"
  fi
fi

# 7. Enable and (re)start: a restart picks up an upgraded package.
run systemctl enable "spc-agent@$INSTANCE"
run systemctl restart "spc-agent@$INSTANCE"
say "spc-agent@$INSTANCE is running: journalctl -u spc-agent@$INSTANCE -f"
