-- Donor labels and donation notes are sealed too (docs/privacy.md), under the donation's own
-- key: subjects may now also be `donation:<id>`. Volunteers' reasons are sealed under the
-- volunteer's existing subject and need nothing new here.
ALTER TABLE subject_keys DROP CONSTRAINT subject_keys_subject_check;
ALTER TABLE subject_keys ADD CONSTRAINT subject_keys_subject_check
    CHECK (subject ~ '^(volunteer|need|donation):[0-9a-f-]{36}$');
