"""The read API for marketing tools: stages, profiles, journeys, segments, funnel."""
