"""Running mrjob's `MRJob` classes unchanged: `adapter` turns one into mrengine steps, `compat` lets
the real mrjob package import on Pythons that removed the modules it imports."""
