#!/usr/bin/env bash
# Start the local PostgreSQL and MariaDB if they are down, and configure what the tests need:
#   - PostgreSQL with wal_level=logical (the CDC readiness tests) and a password-checked role
#     `wmcp_secure` (the wrong-password tests: every other local role is trusted);
#   - MariaDB with the same password-checked user;
#   - TLS on both servers (a self-signed CA and a server certificate for 127.0.0.1/localhost made here),
#     plain connections still accepted: PostgreSQL's `ssl` is reloaded, never restarted; MariaDB is
#     restarted once, only while TLS is not configured yet;
#   - an OpenSSH server on 127.0.0.1:$SSH_PORT (Debian's openssh-server, its own config and host key) with a
#     user `wmcp_tunnel` that logs in with a password or with the test key pairs (one with a passphrase),
#     for the SSH tunnel tests.
# Everything made here lives in $WMCP_TEST_SERVICES (default /var/lib/wmcp-test-services), which the tests
# read too (tests/conftest.py).
# Idempotent; needs root (as on CI and the dev machines). Safe to run again and again.
set -euo pipefail

PG_PASSWORD="wmcp-canary-5e1f0b9d"
DIR="${WMCP_TEST_SERVICES:-/var/lib/wmcp-test-services}"
SSH_PORT=22022
SSH_USER=wmcp_tunnel
SSH_PASSWORD="wmcp-tunnel-canary-7c3a91e2"
SSH_KEY_PASSPHRASE="wmcp-passphrase-canary-4d2e8b61"

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
my_up() { mysqladmin -uroot -h127.0.0.1 status >/dev/null 2>&1; }

if ! pg_up; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
if ! my_up; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
for _ in $(seq 1 60); do pg_up && my_up && break; sleep 1; done
pg_up || { echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
my_up || { echo "MariaDB did not come up on 127.0.0.1:3306" >&2; exit 1; }

# --- TLS material: a CA and one server certificate valid for 127.0.0.1 and localhost ---
tls="$DIR/tls"
mkdir -p "$tls"
chmod 755 "$DIR" "$tls"
if [ ! -s "$tls/server.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=warehouse-mcp test CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/server.ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial \
    -days 3650 -extfile "$tls/server.ext" -out "$tls/server.crt" 2>/dev/null
  chmod 600 "$tls/ca.key" "$tls/server.key"
  chmod 644 "$tls/ca.crt" "$tls/server.crt"
fi
# each server reads its own copy of the key (PostgreSQL insists on owning it)
for who in postgres mysql; do
  install -d -m 755 "$tls/$who"
  install -m 600 -o "$who" -g "$who" "$tls/server.key" "$tls/$who/server.key"
  install -m 644 -o "$who" -g "$who" "$tls/server.crt" "$tls/$who/server.crt"
  install -m 644 -o "$who" -g "$who" "$tls/ca.crt" "$tls/$who/ca.crt"
done

psql_() { psql -h 127.0.0.1 -U postgres -d postgres -qtAX "$@"; }
restart=0
if [ "$(psql_ -c 'SHOW wal_level')" != "logical" ]; then
  psql_ -c "ALTER SYSTEM SET wal_level = logical" >/dev/null
  restart=1
fi
hba=$(psql_ -c 'SHOW hba_file')
if ! grep -q '^host all wmcp_secure ' "$hba"; then
  sed -i '1i host all wmcp_secure 127.0.0.1/32 scram-sha-256' "$hba"
  psql_ -c "SELECT pg_reload_conf()" >/dev/null
fi
if [ "$restart" = 1 ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main restart
  for _ in $(seq 1 60); do pg_up && break; sleep 1; done
fi
psql_ -c "DO \$\$BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'wmcp_secure') THEN
    CREATE ROLE wmcp_secure LOGIN SUPERUSER PASSWORD '$PG_PASSWORD';
  END IF; END\$\$" >/dev/null

# PostgreSQL: `ssl` is reloadable; `host` lines in pg_hba.conf accept TLS and plain connections alike
if [ "$(psql_ -c 'SHOW ssl')" != "on" ] || [ "$(psql_ -c 'SHOW ssl_cert_file')" != "$tls/postgres/server.crt" ]; then
  psql_ -c "ALTER SYSTEM SET ssl_cert_file = '$tls/postgres/server.crt'" \
        -c "ALTER SYSTEM SET ssl_key_file = '$tls/postgres/server.key'" \
        -c "ALTER SYSTEM SET ssl_ca_file = '$tls/postgres/ca.crt'" \
        -c "ALTER SYSTEM SET ssl = on" >/dev/null
  psql_ -c "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 1 20); do [ "$(psql_ -c 'SHOW ssl')" = "on" ] && break; sleep 0.5; done
fi

# MariaDB: TLS files are read at start only, so restart it once, only while TLS is not on yet
my_cnf=/etc/mysql/my.cnf
if ! grep -q '^# wmcp-test-services tls' "$my_cnf"; then
  printf '\n# wmcp-test-services tls (tools/prepare_services.sh)\n[mysqld]\nssl-ca = %s\nssl-cert = %s\nssl-key = %s\n' \
    "$tls/mysql/ca.crt" "$tls/mysql/server.crt" "$tls/mysql/server.key" >>"$my_cnf"
fi
if [ "$(mysql -uroot -h127.0.0.1 -NBe "SHOW VARIABLES LIKE 'have_ssl'" | cut -f2)" != "YES" ]; then
  mysqladmin -uroot -h127.0.0.1 shutdown
  for _ in $(seq 1 60); do pgrep -x mariadbd >/dev/null || break; sleep 0.5; done
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 1 60); do my_up && break; sleep 0.5; done
  my_up || { echo "MariaDB did not come back after enabling TLS" >&2; exit 1; }
fi

mysql -uroot -h127.0.0.1 -e "CREATE USER IF NOT EXISTS 'wmcp_secure'@'127.0.0.1' IDENTIFIED BY '$PG_PASSWORD';
  GRANT ALL PRIVILEGES ON *.* TO 'wmcp_secure'@'127.0.0.1'; FLUSH PRIVILEGES;"
# --- OpenSSH server on loopback, for the SSH tunnel tests ---
if [ ! -x /usr/sbin/sshd ]; then
  # keep the package from starting the system's own sshd on port 22
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made_policy=1; fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null) || true
  [ "$made_policy" = 1 ] && rm -f "$policy"
fi
ssh_dir="$DIR/ssh"
install -d -m 755 "$ssh_dir"
[ -s "$ssh_dir/host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C wmcp-test-host -f "$ssh_dir/host_ed25519_key"
[ -s "$ssh_dir/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C wmcp-test-client -f "$ssh_dir/client_ed25519"
[ -s "$ssh_dir/client_rsa_passphrase" ] || ssh-keygen -q -t rsa -b 2048 -m PEM -N "$SSH_KEY_PASSPHRASE" \
  -C wmcp-test-client-passphrase -f "$ssh_dir/client_rsa_passphrase"
cat "$ssh_dir/client_ed25519.pub" "$ssh_dir/client_rsa_passphrase.pub" >"$ssh_dir/authorized_keys"
chmod 644 "$ssh_dir/authorized_keys"
if ! id "$SSH_USER" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$SSH_USER"
fi
echo "$SSH_USER:$SSH_PASSWORD" | chpasswd
cat >"$ssh_dir/sshd_config" <<CONF
# made by tools/prepare_services.sh: a loopback bastion for the SSH tunnel tests (port forwarding only)
ListenAddress 127.0.0.1:$SSH_PORT
HostKey $ssh_dir/host_ed25519_key
PidFile $ssh_dir/sshd.pid
AuthorizedKeysFile $ssh_dir/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AllowUsers $SSH_USER
AllowTcpForwarding local
PermitTTY no
X11Forwarding no
MaxStartups 100:30:200
MaxSessions 100
LogLevel ERROR
CONF
install -d -m 755 /run/sshd
ssh_up() { [ -s "$ssh_dir/sshd.pid" ] && kill -0 "$(cat "$ssh_dir/sshd.pid")" 2>/dev/null; }
if [ -x /usr/sbin/sshd ]; then
  /usr/sbin/sshd -t -f "$ssh_dir/sshd_config"
  if ssh_up; then
    kill -HUP "$(cat "$ssh_dir/sshd.pid")"   # re-read the config
  else
    /usr/sbin/sshd -f "$ssh_dir/sshd_config"
  fi
  for _ in $(seq 1 20); do ssh_up && break; sleep 0.5; done
fi
ssh_state=$(ssh_up && echo "sshd on 127.0.0.1:$SSH_PORT" || echo "no sshd (openssh-server could not be installed)")
echo "services ready: postgres (wal_level=$(psql_ -c 'SHOW wal_level'), ssl=$(psql_ -c 'SHOW ssl')), mariadb (ssl), $ssh_state"
