#!/usr/bin/env bash
# Start the local PostgreSQL and MariaDB if they are down, and configure what the tests need:
#   - PostgreSQL with wal_level=logical (the CDC readiness tests) and a password-checked role
#     `wmcp_secure` (the wrong-password tests: every other local role is trusted);
#   - MariaDB with the same password-checked user.
# Idempotent; needs root (as on CI and the dev machines). Safe to run again and again.
set -euo pipefail

PG_PASSWORD="wmcp-canary-5e1f0b9d"

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

mysql -uroot -h127.0.0.1 -e "CREATE USER IF NOT EXISTS 'wmcp_secure'@'127.0.0.1' IDENTIFIED BY '$PG_PASSWORD';
  GRANT ALL PRIVILEGES ON *.* TO 'wmcp_secure'@'127.0.0.1'; FLUSH PRIVILEGES;"
echo "services ready: postgres (wal_level=$(psql_ -c 'SHOW wal_level')), mariadb"
