<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


namespace local_riskstream\external;

use context_course;
use context_system;
use core_external\external_api;
use core_external\external_function_parameters;
use core_external\external_multiple_structure;
use core_external\external_single_structure;
use core_external\external_value;
use local_riskstream\service_user;

/**
 * local_riskstream_check_access: which of the connector's capabilities the caller lacks.
 *
 * Several core functions do not fail without a capability, they answer less (no quizzes,
 * only the course total); this tells `riskstream connector check` and `run` exactly which
 * capability is missing, at system level and in one course.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class check_access extends external_api {
    /**
     * Parameters.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'courseid' => new external_value(PARAM_INT, 'Also check this course (0 = system only)', VALUE_DEFAULT, 0),
        ]);
    }

    /**
     * Capabilities the caller lacks.
     *
     * @param int $courseid
     * @return array
     */
    public static function execute(int $courseid = 0): array {
        global $DB, $USER;
        $params = self::validate_parameters(self::execute_parameters(), ['courseid' => $courseid]);
        $courseid = $params['courseid'];
        self::validate_context(context_system::instance());
        $rows = [];
        foreach (service_user::CAPABILITIES as $cap => $why) {
            $rows[$cap] = ['capability' => $cap, 'purpose' => $why, 'system' => true, 'course' => true];
        }
        foreach (service_user::missing((int)$USER->id) as $cap) {
            $rows[$cap]['system'] = false;
        }
        $coursefound = false;
        if ($courseid && $DB->record_exists('course', ['id' => $courseid])) {
            $coursefound = true;
            foreach (service_user::missing((int)$USER->id, $courseid) as $cap) {
                $rows[$cap]['course'] = false;
            }
        }
        return ['capabilities' => array_values($rows), 'coursefound' => $coursefound, 'userid' => (int)$USER->id];
    }

    /**
     * Return structure.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        return new external_single_structure([
            'capabilities' => new external_multiple_structure(new external_single_structure([
                'capability' => new external_value(PARAM_CAPABILITY, 'Capability'),
                'purpose' => new external_value(PARAM_TEXT, 'What the connector needs it for'),
                'system' => new external_value(PARAM_BOOL, 'The caller has it at system level'),
                'course' => new external_value(PARAM_BOOL, 'The caller has it in the course (true when no course)'),
            ])),
            'coursefound' => new external_value(PARAM_BOOL, 'The course exists'),
            'userid' => new external_value(PARAM_INT, 'The caller (the service user)'),
        ]);
    }
}
