"""The HTTP services: the pages for people who are not Prefect users (`app.create_app`:
approval links, acknowledgement links, the crisis page) and the alert intake
(`intake.create_app`). They answer paused runs and read the runtime, so they sit above flows."""
