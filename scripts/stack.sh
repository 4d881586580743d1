# Shared by the measurement scripts: a throw-away Baton deployment in a temporary directory.
# Source it, then call `stack_init NAME` and `stack_config <<YAML ... YAML` (the jobs part of the YAML);
# it sets $dir and $config, and removes the directory and stops the services on exit.

stack_init() {
  dir=$(mktemp -d "/tmp/bt-$1-XXXXXX")
  config="$dir/baton.yaml"
  trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
  # Run the EXIT trap on Ctrl-C and kill too.
  trap 'exit 130' INT TERM
}

# Writes $config: the data directory and ipc:// endpoints under $dir, then the YAML read from stdin.
stack_config() {
  {
    echo "data_dir: $dir/data"
    echo "endpoints:"
    for endpoint in runs control results acks status_in status_out query reports; do
      echo "  $endpoint: ipc://$dir/${endpoint//_/-}"
    done
    cat
  } > "$config"
}

# Starts services from $bin in the background: stack_start logger scheduler ...
stack_start() {
  for service in "$@"; do
    # BATON_SUPERVISOR_PID: the service exits if this script dies, however it dies.
    BATON_SUPERVISOR_PID=$$ "$bin/baton-$service" --config "$config" 2>"$dir/$service.err" &
    pids[$service]=$!
  done
}
declare -A pids
