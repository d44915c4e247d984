"""Routing: decides per question where it goes and runs the closed-loop warm referral."""
