-- Sessions of the web app (services/web): a person signs in once with their token and the
-- browser then holds only a random session id in an HttpOnly, SameSite=Strict cookie. Stored
-- here: the hash of that id (a database reader cannot sign in with it), the hash of the token
-- it was opened with (so revoking the token ends the session), and the session's CSRF secret.
CREATE TABLE web_sessions (
    session_hash text PRIMARY KEY,
    token_hash   text NOT NULL,
    csrf         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
