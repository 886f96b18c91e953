-- Why: the people and facts hlfsync acts on: organisations, chapters, the users who coordinate
-- them, peer mentors with their status and Dynamics contact, and their certifications. The
-- constraints make bad states unrepresentable, so no code path has to remember them.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(btrim(name)) > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chapters (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name             text NOT NULL CHECK (length(btrim(name)) > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, name)
);
CREATE INDEX chapters_organization_idx ON chapters (organization_id);

-- Coordinators and administrators. On Supabase the id is the auth.users id (the JWT `sub`).
CREATE TABLE app_users (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    full_name        text NOT NULL,
    email            text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE coordinator_chapters (
    user_id     uuid NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    chapter_id  uuid NOT NULL REFERENCES chapters (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, chapter_id)
);
CREATE INDEX coordinator_chapters_chapter_idx ON coordinator_chapters (chapter_id);

CREATE TABLE organization_admins (
    user_id          uuid NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    organization_id  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, organization_id)
);
CREATE INDEX organization_admins_org_idx ON organization_admins (organization_id);

-- Push targets; a token FCM reports UNREGISTERED is deleted.
CREATE TABLE device_tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES app_users (id) ON DELETE CASCADE,
    token         text NOT NULL UNIQUE CHECK (length(token) BETWEEN 1 AND 4096),
    platform      text NOT NULL DEFAULT 'android' CHECK (platform IN ('android', 'ios', 'web')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX device_tokens_user_idx ON device_tokens (user_id);

CREATE TABLE peer_mentors (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    full_name            text NOT NULL,
    -- Only `active` mentors are listed on the website.
    status               text NOT NULL DEFAULT 'active'
                         CHECK (status IN ('active', 'paused', 'inactive')),
    -- Why the mentor has this status; `certification_expired` lets renewal restore only
    -- mentors paused for expiry, never one paused by hand.
    status_reason        text CHECK (status_reason IS NULL OR length(status_reason) <= 200),
    status_changed_at    timestamptz NOT NULL DEFAULT now(),
    dynamics_contact_id  uuid UNIQUE,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX peer_mentors_organization_idx ON peer_mentors (organization_id);
CREATE INDEX peer_mentors_status_idx ON peer_mentors (status);

CREATE TABLE chapter_memberships (
    mentor_id   uuid NOT NULL REFERENCES peer_mentors (id) ON DELETE CASCADE,
    chapter_id  uuid NOT NULL REFERENCES chapters (id) ON DELETE CASCADE,
    PRIMARY KEY (mentor_id, chapter_id)
);
CREATE INDEX chapter_memberships_chapter_idx ON chapter_memberships (chapter_id, mentor_id);

-- One current certification per mentor; renewals move `expires_on` and append to the history.
CREATE TABLE certifications (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    mentor_id        uuid NOT NULL UNIQUE REFERENCES peer_mentors (id) ON DELETE CASCADE,
    issued_on        date NOT NULL,
    expires_on       date NOT NULL,
    renewal_history  jsonb NOT NULL DEFAULT '[]'::jsonb
                     CHECK (jsonb_typeof(renewal_history) = 'array'),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (expires_on >= issued_on)
);
-- The nightly check scans by expiry date.
CREATE INDEX certifications_expires_on_idx ON certifications (expires_on);

-- True when the array is a non-empty set of positive, distinct, non-null days.
CREATE FUNCTION valid_threshold_days(days int[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT cardinality(days) > 0
       AND array_position(days, NULL) IS NULL
       AND (SELECT bool_and(d > 0) AND count(DISTINCT d) = count(*) FROM unnest(days) AS d)
$$;

CREATE TABLE org_settings (
    organization_id          uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    reminder_threshold_days  int[] NOT NULL DEFAULT '{30,14,7}'
                             CHECK (valid_threshold_days(reminder_threshold_days)),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

-- The unique key is what makes the nightly check idempotent: a reminder is sent only when its
-- row is actually inserted, so a repeated or concurrent run sends nothing twice.
CREATE TABLE cert_expiry_reminders (
    id                         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mentor_id                  uuid NOT NULL REFERENCES peer_mentors (id) ON DELETE CASCADE,
    certification_id           uuid REFERENCES certifications (id) ON DELETE SET NULL,
    threshold_day              int NOT NULL CHECK (threshold_day > 0),
    certification_expiry_date  date NOT NULL,
    days_left                  int,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    UNIQUE (mentor_id, threshold_day, certification_expiry_date)
);
