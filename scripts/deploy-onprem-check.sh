#!/usr/bin/env bash
# The on-prem recipe of docs/deploy.md, on one machine: three silo processes of the built host with Localhost
# clustering (silo 1 is the primary) and one shared checkpoint directory. The settings files are the recipe's, with
# 127.0.0.1 for the machines' addresses and different ports and state directories because all three run here.
#
# Usage: scripts/deploy-onprem-check.sh <path to StreamGrains.Silo.dll> <work directory> [first silo port] [first gateway port]
#
# Starts the silos in the background (each logs to <work directory>/siloN.log), writes their process ids to
# <work directory>/pids, waits until each accepts clients on its gateway port, and exits 0. The caller checks the cluster (the
# process-level tests connect a client, run the sample job and stop the silos with SIGTERM). Set
# STREAMGRAINS_PARENT_PID in the environment to make the silos stop when that process is gone.
set -euo pipefail

host="${1:?path to StreamGrains.Silo.dll}"
work="${2:?work directory}"
silo_port="${3:-11111}"
gateway_port="${4:-30000}"
mkdir -p "$work/checkpoints"
: > "$work/pids"

for n in 1 2 3; do
  mkdir -p "$work/silo$n"
  cat > "$work/silo$n.json" <<JSON
{
  "Cluster": {
    "ClusterId": "prod",
    "ServiceId": "streamgrains",
    "Clustering": "Localhost",
    "AdvertisedIPAddress": "127.0.0.1",
    "SiloPort": $((silo_port + n - 1)),
    "GatewayPort": $((gateway_port + n - 1)),
    "PrimarySiloEndpoint": "127.0.0.1:$silo_port"
  },
  "StreamGrains": {
    "StateDirectory": "$work/silo$n/state",
    "CheckpointStorage": {
      "Kind": "FileSystem",
      "Path": "$work/checkpoints"
    }
  }
}
JSON
  # The built host, started with dotnet: no `dotnet run` parent that could die and leave the silo holding its ports.
  nohup dotnet "$host" run --config "$work/silo$n.json" > "$work/silo$n.log" 2>&1 < /dev/null &
  echo $! >> "$work/pids"
done

for n in 1 2 3; do
  port=$((gateway_port + n - 1))
  pid=$(sed -n "${n}p" "$work/pids")
  for _ in $(seq 1 1200); do
    if (: > "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then
      break
    fi
    if ! kill -0 "$pid" 2> /dev/null; then
      echo "silo $n exited while starting:" >&2
      cat "$work/silo$n.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  (: > "/dev/tcp/127.0.0.1/$port") 2> /dev/null || { echo "silo $n does not accept clients on port $port after 120 s" >&2; exit 1; }
done
echo "three silos accept clients: pids $(tr '\n' ' ' < "$work/pids")"
