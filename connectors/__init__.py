"""Platform adapters: each sub-package translates one chat platform's events into calls on the Lorebot core."""
