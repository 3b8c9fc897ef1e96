"""Fair shares of slots between running master jobs (the pure rule the master's Scheduler follows)."""

from mrengine.fairshare import next_job, shares


def test_equal_shares_when_every_job_needs_more_than_its_share():
    assert shares({"a": 50, "b": 50, "c": 50}, slots=6) == {"a": 2, "b": 2, "c": 2}


def test_a_job_needing_less_than_its_share_leaves_the_rest_to_the_others():
    assert shares({"big": 100, "small": 1, "mid": 2}, slots=9) == {"small": 1, "mid": 2, "big": 6}


def test_jobs_with_nothing_to_run_get_no_share():
    assert shares({"done": 0, "busy": 10}, slots=4) == {"busy": 4}


def test_a_job_below_its_share_gets_the_next_slot_even_if_submitted_later():
    job_shares = shares({"long": 100, "short": 3}, slots=4)
    assert next_job({"long": 4, "short": 0}, job_shares) == "short"
    assert next_job({"long": 1, "short": 2}, job_shares) == "long"  # 1/1 of its share against 2/3


def test_ties_go_to_the_job_submitted_first():
    job_shares = shares({"first": 10, "second": 10}, slots=4)
    assert next_job({"first": 1, "second": 1}, job_shares) == "first"
    assert next_job({"second": 1, "first": 1}, job_shares) == "second"  # the order given is the submission order


def test_no_job_when_none_has_a_share():
    assert next_job({"a": 0}, shares({"a": 0}, slots=2)) is None
    assert next_job({}, {}) is None
