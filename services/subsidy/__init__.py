"""The KB's subsidy scheme for libraries: applications, rules, budget, decisions, payments."""
