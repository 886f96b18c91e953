-- Why: every administrator/operator alert (credentials failing, breaker open, compensation
-- findings, contract drift, whatever kind comes next) was only ever pushed through FCM, so the
-- alert that says "push credentials broken" could reach nobody. Issue 17 adds a second channel,
-- independent of FCM (an incoming webhook and/or e-mail), and keeps it as durable as pushes:
--   * `operator_notices`: one row per incident and event ('raised', 'recovered'), written by
--     triggers in the same transaction as what it reports, so nothing is sent before it is
--     stored and nothing stored is lost; the dispatcher sends due rows with a lease and retries
--     them with backoff until every configured channel has them;
--   * a raised notice for every alert that is not about a mentor (`mentor_id IS NULL`), whoever
--     its push audience is (that query is another concern and may change); keyed by
--     (kind, incident_key), so one per incident;
--   * a recovered notice when a failing credential check passes again or a breaker closes,
--     only for an incident that raised a notice.
-- Functions fix search_path and name every object fully, like 0010 asks.

CREATE TABLE public.operator_notices (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL CHECK (length(kind) BETWEEN 1 AND 64),
    incident_key     text NOT NULL CHECK (length(incident_key) BETWEEN 1 AND 200),
    event            text NOT NULL CHECK (event IN ('raised', 'recovered')),
    alert_id         bigint REFERENCES public.alerts (id),
    -- What the alert's details said (reason, counts); never a secret, as alerts.details.
    details          jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'in_progress', 'delivered')),
    -- Channels ('webhook', 'email') that have this notice already: a retry sends the others only.
    sent_to          text[] NOT NULL DEFAULT '{}',
    attempt_count    int NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    locked_until     timestamptz,
    last_error       text CHECK (length(last_error) <= 500),
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (kind, incident_key, event),
    CONSTRAINT operator_notice_leased_iff_in_progress
        CHECK ((status = 'in_progress') = (locked_until IS NOT NULL)),
    CONSTRAINT operator_notice_delivered_has_time
        CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
CREATE INDEX operator_notices_due_idx ON public.operator_notices (next_attempt_at, id)
    WHERE status <> 'delivered';

ALTER TABLE public.operator_notices ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.operator_notices FORCE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE public.operator_notices FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE public.operator_notices TO service_role;
CREATE POLICY service_access ON public.operator_notices TO service_role
    USING (true) WITH CHECK (true);
REVOKE ALL ON SEQUENCE public.operator_notices_id_seq FROM PUBLIC, anon, authenticated;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE public.operator_notices_id_seq TO service_role;

-- An alert that is not about one mentor is an administrator/operator alert: tell the operators.
CREATE FUNCTION public.operator_notice_for_alert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
    IF NEW.mentor_id IS NULL THEN
        INSERT INTO public.operator_notices
            (kind, incident_key, event, alert_id, details, next_attempt_at, created_at)
        VALUES (NEW.kind, NEW.incident_key, 'raised', NEW.id, NEW.details, NEW.created_at,
                NEW.created_at)
        ON CONFLICT (kind, incident_key, event) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_operator_notice AFTER INSERT ON public.alerts
    FOR EACH ROW EXECUTE FUNCTION public.operator_notice_for_alert();

-- The recovered notice of an incident that raised one (a check that never failed says nothing).
CREATE FUNCTION public.operator_notice_recovered(
    notice_kind text, notice_key text, at timestamptz, notice_details jsonb)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = '' AS $$
    INSERT INTO public.operator_notices
        (kind, incident_key, event, details, next_attempt_at, created_at)
    SELECT notice_kind, notice_key, 'recovered', notice_details, at, at
     WHERE EXISTS (SELECT 1 FROM public.operator_notices n
                    WHERE n.kind = notice_kind AND n.incident_key = notice_key
                      AND n.event = 'raised')
    ON CONFLICT (kind, incident_key, event) DO NOTHING;
$$;

-- A credential check passing after failing ends incident `name:incident` (db.health's key).
CREATE FUNCTION public.operator_notice_credentials_ok() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
    IF NOT OLD.ok AND NEW.ok THEN
        PERFORM public.operator_notice_recovered(
            'auth_failure', OLD.name || ':' || OLD.incident, NEW.checked_at,
            jsonb_build_object('check', NEW.name, 'detail', NEW.detail));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER credential_health_operator_notice AFTER UPDATE ON public.credential_health
    FOR EACH ROW EXECUTE FUNCTION public.operator_notice_credentials_ok();

-- A breaker closing ends incident `name:incident` (db.breaker's key).
CREATE FUNCTION public.operator_notice_breaker_closed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
    IF OLD.state <> 'closed' AND NEW.state = 'closed' THEN
        PERFORM public.operator_notice_recovered(
            'breaker_open', OLD.name || ':' || OLD.incident, NEW.updated_at,
            jsonb_build_object('breaker', NEW.name));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER circuit_breakers_operator_notice AFTER UPDATE ON public.circuit_breakers
    FOR EACH ROW EXECUTE FUNCTION public.operator_notice_breaker_closed();

REVOKE EXECUTE ON FUNCTION public.operator_notice_for_alert(),
    public.operator_notice_recovered(text, text, timestamptz, jsonb),
    public.operator_notice_credentials_ok(), public.operator_notice_breaker_closed()
    FROM PUBLIC, anon, authenticated;
