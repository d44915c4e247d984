"""Read models over all events: the KB monitor, agency feedback, rollout coverage, exports."""
