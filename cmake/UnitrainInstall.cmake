install(TARGETS unitrain_core unitrain)
