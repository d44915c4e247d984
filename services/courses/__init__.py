"""Klik & Tik, Digisterker and staff training: sessions, capacity, enrolment, waitlists, attendance."""
