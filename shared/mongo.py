"""The MongoDB client (PyMongo async API). Code here runs on MongoDB 7+ and on FerretDB 1.x:
single-document atomic writes only, no multi-document transactions, no TTL, no $lookup."""

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase


def connect(url: str) -> AsyncMongoClient:
    # tz_aware: datetimes come back as UTC-aware, as they went in.
    return AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=5000, uuidRepresentation="standard")


async def ping(db: AsyncDatabase) -> bool:
    try:
        await db.command("ping")
    except Exception:
        return False
    return True
