"""Writes the JWTs the tests use: the built-in default account's (an admin) and a second, ordinary account's.

Run with the server's venv python and settings (start.sh does). Uses the server's own code to sign tokens, so
they are exactly what the instance issues: geovisio `geovisio/utils/tokens.py` (default account token) and
`geovisio/web/tokens.py` `_generate_jwt_token` (signing a row of the `tokens` table).
"""
import os
import sys

from geovisio import create_app
from geovisio.utils import db, tokens
from geovisio.web.tokens import _generate_jwt_token

SECOND_ACCOUNT = "mtp-second-user"

out_dir = sys.argv[1]
app = create_app()
with app.app_context():
    admin = tokens.get_default_account_jwt_token()
    with db.conn(app) as conn, conn.cursor() as cur:
        row = cur.execute("SELECT id FROM accounts WHERE name = %s", [SECOND_ACCOUNT]).fetchone()
        account_id = row[0] if row else cur.execute(
            "INSERT INTO accounts (name) VALUES (%s) RETURNING id", [SECOND_ACCOUNT]
        ).fetchone()[0]
        row = cur.execute(
            "SELECT id FROM tokens WHERE account_id = %s ORDER BY generated_at LIMIT 1", [account_id]
        ).fetchone()
        token_id = row[0] if row else cur.execute(
            "INSERT INTO tokens (account_id, description) VALUES (%s, 'mtp tests') RETURNING id", [account_id]
        ).fetchone()[0]
    second = _generate_jwt_token(token_id)

for name, value in (("admin.token", admin), ("second.token", second)):
    path = os.path.join(out_dir, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
