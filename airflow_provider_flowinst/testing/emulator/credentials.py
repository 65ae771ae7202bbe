"""The credentials the emulator accepts, one set per platform; the demo and the tests use these."""

from __future__ import annotations

ENOS_APP_KEY = "emulator-app-key"
ENOS_APP_SECRET = "emulator-app-secret"
ENOS_ORG_ID = "o15000000000001"
ENOS_USER_ID = "u15000000000001"

BPM_ACCOUNT = "bpm.user@example.com"
BPM_PASSWORD = "emulator-bpm-password"

LSF_USER = "jsmith"
LSF_PASSWORD = "emulator-lsf-password"

DATAWORKS_ACCESS_KEY_ID = "LTAI5tEmulatorKeyId"
DATAWORKS_ACCESS_KEY_SECRET = "emulator-access-key-secret"
DATAWORKS_REGION_ID = "cn-hangzhou"
DATAWORKS_PROJECT_ID = 100
