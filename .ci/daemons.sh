#!/usr/bin/env bash
# Real daemons from Debian's packages on free loopback ports, for the detection end-to-end test
# (cli/tests/real_daemons.rs).
#
#   .ci/daemons.sh start DIR   starts sshd, nginx, vsftpd, redis-server and PostgreSQL under DIR and
#                              prints two lines on stdout: `VIGIL_REAL_DAEMONS=ssh=127.0.0.1:P,...`
#                              and `VIGIL_TEST_DATABASE_URL=postgres://USER@127.0.0.1:P/postgres`
#                              (that PostgreSQL, trust auth on loopback, for the tests that create
#                              a database of their own: server/tests/postgres.rs, cli/tests/cluster.rs)
#   .ci/daemons.sh stop DIR    stops them
#
# Every daemon listens on 127.0.0.1 only. Nothing here is started as a system service.
set -euo pipefail

cmd="${1:?usage: daemons.sh start|stop DIR}"
dir="${2:?usage: daemons.sh start|stop DIR}"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    su postgres -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
  for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2).close()" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "daemons.sh: nothing listens on 127.0.0.1:$1 ($2)" >&2
  return 1
}

stop() {
  [ -d "$dir" ] || return 0
  [ -f "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
  [ -f "$dir/sshd.pid" ] && kill "$(cat "$dir/sshd.pid")" 2>/dev/null || true
  [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  [ -f "$dir/vsftpd.pid" ] && kill "$(cat "$dir/vsftpd.pid")" 2>/dev/null || true
  if [ -n "$pg_bin" ] && [ -f "$dir/pg/data/postmaster.pid" ]; then
    as_postgres "'$pg_bin/pg_ctl' -D '$dir/pg/data' -m immediate stop" >/dev/null 2>&1 || true
  fi
}

start() {
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local ssh http ftp redis pg
  ssh=$(free_port); http=$(free_port); ftp=$(free_port); redis=$(free_port); pg=$(free_port)

  # OpenSSH: a throwaway host key; the privilege-separation directory sshd insists on.
  ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh_host_ed25519_key" <<<y >/dev/null 2>&1
  if [ "$(id -u)" -eq 0 ]; then mkdir -p /run/sshd; fi
  "$(command -v sshd || echo /usr/sbin/sshd)" -f /dev/null -o "ListenAddress=127.0.0.1:$ssh" \
    -o "HostKey=$dir/ssh_host_ed25519_key" -o "PidFile=$dir/sshd.pid" -E "$dir/sshd.log"

  cat >"$dir/nginx.conf" <<EOF
daemon on;
pid $dir/nginx.pid;
error_log $dir/nginx.log;
events {}
http {
  access_log off;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir;
  uwsgi_temp_path $dir; scgi_temp_path $dir;
  server { listen 127.0.0.1:$http; location / { return 200 "vigil test page\n"; } }
}
EOF
  "$(command -v nginx || echo /usr/sbin/nginx)" -c "$dir/nginx.conf" -e "$dir/nginx.log"

  # Anonymous sessions are chrooted into a root nobody may write to (vsftpd refuses otherwise).
  mkdir -p "$dir/ftp" "$dir/ftp-empty" && chmod 555 "$dir/ftp" "$dir/ftp-empty"
  if [ "$(id -u)" -eq 0 ]; then chown root:root "$dir/ftp" "$dir/ftp-empty"; fi
  local ftp_user=""
  if [ "$(id -u)" -ne 0 ]; then ftp_user="run_as_launching_user=YES"; fi
  cat >"$dir/vsftpd.conf" <<EOF
listen=YES
listen_address=127.0.0.1
listen_port=$ftp
anonymous_enable=YES
anon_root=$dir/ftp
local_enable=NO
background=NO
secure_chroot_dir=$dir/ftp-empty
vsftpd_log_file=$dir/vsftpd.log
$ftp_user
EOF
  # Its own standard streams: a caller reading our output must not wait for vsftpd to exit.
  "$(command -v vsftpd || echo /usr/sbin/vsftpd)" "$dir/vsftpd.conf" </dev/null >"$dir/vsftpd.out" 2>&1 &
  echo $! >"$dir/vsftpd.pid"

  redis-server --port "$redis" --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"

  mkdir -p "$dir/pg"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir/pg"; chmod o+x "$dir"; fi
  as_postgres "'$pg_bin/initdb' -D '$dir/pg/data' -A trust >/dev/null"
  # Parallel tests each open a few pools: allow plenty of connections. Nothing here needs to
  # survive a crash, so no fsync.
  as_postgres "'$pg_bin/pg_ctl' -D '$dir/pg/data' -l '$dir/pg/log' -w -o \"-p $pg -k '$dir/pg' -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off\" start >/dev/null"

  wait_port "$ssh" sshd; wait_port "$http" nginx; wait_port "$ftp" vsftpd
  wait_port "$redis" redis-server; wait_port "$pg" postgres
  echo "VIGIL_REAL_DAEMONS=ssh=127.0.0.1:$ssh,http=127.0.0.1:$http,ftp=127.0.0.1:$ftp,redis=127.0.0.1:$redis,postgresql=127.0.0.1:$pg"
  # initdb makes the user who runs it the superuser.
  local pg_user=postgres
  if [ "$(id -u)" -ne 0 ]; then pg_user="$(id -un)"; fi
  echo "VIGIL_TEST_DATABASE_URL=postgres://$pg_user@127.0.0.1:$pg/postgres"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: daemons.sh start|stop DIR" >&2; exit 2 ;;
esac
