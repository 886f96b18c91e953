-- Why: a membership or coordination row that joins a mentor or a user to another
-- organisation's chapter is inconsistent data that leaks by construction: the coordinators of
-- that chapter see the foreign mentor's id (issue 15). Hiding such rows on every read made the
-- mentor page six times slower, so they are made impossible instead:
--
-- * chapter_memberships and coordinator_chapters refuse a row whose mentor or user belongs to
--   another organisation than the chapter;
-- * a mentor, user or chapter cannot move to another organisation while such rows tie it to
--   its present one;
-- * rows already inconsistent are removed, each recorded in the audit log first (the audit log
--   keeps what was there; nothing else refers to these rows).

INSERT INTO public.audit_log (mentor_id, event_type, actor, details)
SELECT cm.mentor_id, 'stray_membership_removed', 'migration 0017',
       jsonb_build_object('chapter_id', cm.chapter_id, 'chapter_organization_id', c.organization_id,
                          'mentor_organization_id', m.organization_id)
  FROM public.chapter_memberships cm
  JOIN public.chapters c ON c.id = cm.chapter_id
  JOIN public.peer_mentors m ON m.id = cm.mentor_id
 WHERE m.organization_id <> c.organization_id;
DELETE FROM public.chapter_memberships cm
 USING public.chapters c, public.peer_mentors m
 WHERE c.id = cm.chapter_id AND m.id = cm.mentor_id AND m.organization_id <> c.organization_id;

INSERT INTO public.audit_log (event_type, actor, details)
SELECT 'stray_coordination_removed', 'migration 0017',
       jsonb_build_object('user_id', cc.user_id, 'chapter_id', cc.chapter_id,
                          'chapter_organization_id', c.organization_id,
                          'user_organization_id', u.organization_id)
  FROM public.coordinator_chapters cc
  JOIN public.chapters c ON c.id = cc.chapter_id
  JOIN public.app_users u ON u.id = cc.user_id
 WHERE u.organization_id <> c.organization_id;
DELETE FROM public.coordinator_chapters cc
 USING public.chapters c, public.app_users u
 WHERE c.id = cc.chapter_id AND u.id = cc.user_id AND u.organization_id <> c.organization_id;

CREATE FUNCTION public.refuse_cross_organisation_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
DECLARE
    member_org  uuid;
    chapter_org uuid;
BEGIN
    SELECT organization_id INTO chapter_org FROM public.chapters WHERE id = NEW.chapter_id;
    IF TG_TABLE_NAME = 'chapter_memberships' THEN
        SELECT organization_id INTO member_org FROM public.peer_mentors WHERE id = NEW.mentor_id;
    ELSE
        SELECT organization_id INTO member_org FROM public.app_users WHERE id = NEW.user_id;
    END IF;
    IF member_org IS DISTINCT FROM chapter_org THEN
        RAISE EXCEPTION 'a chapter of one organisation cannot hold a member of another'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER chapter_memberships_one_organisation
    BEFORE INSERT OR UPDATE ON public.chapter_memberships
    FOR EACH ROW EXECUTE FUNCTION public.refuse_cross_organisation_row();
CREATE TRIGGER coordinator_chapters_one_organisation
    BEFORE INSERT OR UPDATE ON public.coordinator_chapters
    FOR EACH ROW EXECUTE FUNCTION public.refuse_cross_organisation_row();

CREATE FUNCTION public.refuse_organisation_move() RETURNS trigger
LANGUAGE plpgsql SET search_path = '' AS $$
BEGIN
    IF (TG_TABLE_NAME = 'peer_mentors' AND EXISTS (
            SELECT 1 FROM public.chapter_memberships WHERE mentor_id = NEW.id))
       OR (TG_TABLE_NAME = 'app_users' AND EXISTS (
            SELECT 1 FROM public.coordinator_chapters WHERE user_id = NEW.id))
       OR (TG_TABLE_NAME = 'chapters' AND (
            EXISTS (SELECT 1 FROM public.chapter_memberships WHERE chapter_id = NEW.id)
            OR EXISTS (SELECT 1 FROM public.coordinator_chapters WHERE chapter_id = NEW.id)))
    THEN
        RAISE EXCEPTION 'remove its chapter rows before moving it to another organisation'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER peer_mentors_organisation_move
    BEFORE UPDATE OF organization_id ON public.peer_mentors
    FOR EACH ROW WHEN (OLD.organization_id IS DISTINCT FROM NEW.organization_id)
    EXECUTE FUNCTION public.refuse_organisation_move();
CREATE TRIGGER app_users_organisation_move
    BEFORE UPDATE OF organization_id ON public.app_users
    FOR EACH ROW WHEN (OLD.organization_id IS DISTINCT FROM NEW.organization_id)
    EXECUTE FUNCTION public.refuse_organisation_move();
CREATE TRIGGER chapters_organisation_move
    BEFORE UPDATE OF organization_id ON public.chapters
    FOR EACH ROW WHEN (OLD.organization_id IS DISTINCT FROM NEW.organization_id)
    EXECUTE FUNCTION public.refuse_organisation_move();

REVOKE EXECUTE ON FUNCTION public.refuse_cross_organisation_row(), public.refuse_organisation_move()
    FROM PUBLIC, anon, authenticated;
